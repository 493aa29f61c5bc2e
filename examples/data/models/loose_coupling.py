"""Loose, one-way coupling: each model runs every year, then hands its outputs to the next.

model_1 reads the configured inputs; model_2 reads model_1's output files; model_3 reads model_2's.
"""

from proxymod.model import Prox

START_YEAR, END_YEAR, STEP = 2010, 2100, 5


def run_all_years(config: str, name: str, feeder: Prox | None) -> Prox:
    """Run one model over every year, on ``feeder``'s outputs (None: the configured inputs)."""
    model = Prox(
        config,
        name,
        start_yr=START_YEAR,
        end_yr=END_YEAR,
        step=STEP,
        in_one=None if feeder is None else feeder.out_file_1,
        in_two=None if feeder is None else feeder.out_file_2,
    )
    for _year in range(START_YEAR, END_YEAR + STEP, STEP):
        model.advance()
    model.close()
    return model


def loose_coupling(config_1: str, config_2: str, config_3: str) -> None:
    """Run three models over 2010-2100, each fed by the previous one's outputs."""
    model_1 = run_all_years(config_1, "loose_coupling_model_1", None)
    model_2 = run_all_years(config_2, "loose_coupling_model_2", model_1)
    run_all_years(config_3, "loose_coupling_model_3", model_2)
