"""Tight, two-way coupling: as tight coupling, then model_1 runs again on the others' outputs.

For each year: model_1 -> model_2 -> model_3 (one way), then model_1 again with input one from
model_2 and input two from model_3, followed by model_2 and model_3 again on the new outputs.
"""

from proxymod.model import Prox

YEARS = range(2010, 2030, 5)  # 2010, 2015, 2020, 2025


def run_year(config: str, name: str, year: int, in_one: str | None, in_two: str | None) -> Prox:
    """Run one model for one year on the given input files (None: the configured input)."""
    model = Prox(config, name, target_yr=year, in_one=in_one, in_two=in_two)
    model.advance()
    model.close()
    return model


def tight_coupling_twoway(config_1: str, config_2: str, config_3: str) -> None:
    """For each year, run the three models one way, then once more with feedback to model_1."""
    names = [f"tight_coupling_twoway_model_{number}" for number in (1, 2, 3)]
    for year in YEARS:
        model_1 = run_year(config_1, names[0], year, None, None)
        model_2 = run_year(config_2, names[1], year, model_1.out_file_1, model_1.out_file_2)
        model_3 = run_year(config_3, names[2], year, model_2.out_file_1, model_2.out_file_2)

        model_1 = run_year(config_1, names[0], year, model_2.out_file_1, model_3.out_file_2)
        model_2 = run_year(config_2, names[1], year, model_1.out_file_1, model_1.out_file_2)
        run_year(config_3, names[2], year, model_2.out_file_1, model_2.out_file_2)
