"""The output CSVs the example models must produce, derived independently from proxymod's rules.

Every model step replaces a year's value by its square root and writes ``year,value`` lines
with Python's default float formatting; a chain of models applies the root again per step.
"""

from __future__ import annotations

import math
from pathlib import Path

LOOSE_YEARS = list(range(2010, 2105, 5))
TIGHT_YEARS = [2010, 2015, 2020, 2025]

#: model name -> (square roots applied to input one, to input two), for the final files
_ROOTS = {
    "loose_coupling_model_1": (1, 1),
    "loose_coupling_model_2": (2, 2),
    "loose_coupling_model_3": (3, 3),
    "tight_coupling_model_1": (1, 1),
    "tight_coupling_model_2": (2, 2),
    "tight_coupling_model_3": (3, 3),
    # the second, feedback pass overwrites the first: model_1 takes model_2's output one
    # and model_3's output two, then model_2 and model_3 follow on the new values
    "tight_coupling_twoway_model_1": (3, 4),
    "tight_coupling_twoway_model_2": (4, 5),
    "tight_coupling_twoway_model_3": (5, 6),
}


def read_inputs(csv: Path) -> dict[str, float]:
    """Year -> value of an input CSV (header skipped)."""
    rows = csv.read_text().splitlines()[1:]
    return {year: float(value) for year, value in (row.split(",") for row in rows)}


def _root(value: float, times: int) -> float:
    for _ in range(times):
        value = math.sqrt(value)
    return value


def _csv(values: dict[str, float]) -> bytes:
    lines = ["year,value"] + [f"{year},{value}" for year, value in values.items()]
    return ("\n".join(lines) + "\n").encode()


def expected_outputs(inputs_dir: Path) -> dict[str, bytes]:
    """Relative path under ``outputs/`` -> exact bytes, for the three example models."""
    inputs = (
        read_inputs(inputs_dir / "in_file_one.csv"),
        read_inputs(inputs_dir / "in_file_two.csv"),
    )
    files: dict[str, bytes] = {}
    for model, roots in _ROOTS.items():
        for which in (0, 1):
            if model.startswith("loose"):
                years = {str(y): inputs[which][str(y)] for y in LOOSE_YEARS}
                values = {y: _root(v, roots[which]) for y, v in years.items()}
                files[f"{model}_outputs/output{which + 1}_{model}_2010_2100.csv"] = _csv(values)
            else:
                for year in TIGHT_YEARS:
                    value = _root(inputs[which][str(year)], roots[which])
                    name = f"{model}_outputs/output{which + 1}_{model}_{year}.csv"
                    files[name] = _csv({str(year): value})
    return files
