"""Tight, one-way coupling: year by year, model_1 feeds model_2, which feeds model_3."""

from proxymod.model import Prox

YEARS = range(2010, 2030, 5)  # 2010, 2015, 2020, 2025


def run_year(config: str, name: str, year: int, feeder: Prox | None) -> Prox:
    """Run one model for one year, on ``feeder``'s outputs (None: the configured inputs)."""
    model = Prox(
        config,
        name,
        target_yr=year,
        in_one=None if feeder is None else feeder.out_file_1,
        in_two=None if feeder is None else feeder.out_file_2,
    )
    model.advance()
    model.close()
    return model


def tight_coupling(config_1: str, config_2: str, config_3: str) -> None:
    """For each year, run model_1, then model_2 on its outputs, then model_3 on model_2's."""
    for year in YEARS:
        model_1 = run_year(config_1, "tight_coupling_model_1", year, None)
        model_2 = run_year(config_2, "tight_coupling_model_2", year, model_1)
        run_year(config_3, "tight_coupling_model_3", year, model_2)
