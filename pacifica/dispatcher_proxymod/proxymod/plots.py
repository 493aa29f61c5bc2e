"""The charts of a proxymod run: which output CSVs belong to which model and config, drawn.

Models run one after the other, so the CSVs a model file wrote or changed are those that differ
from a snapshot taken before it ran. A proxymod model writes into ``<out_dir>/<name>_outputs/``;
that folder's config is the one whose ``out_dir`` holds it, and when several configs share an
``out_dir`` (as in the examples), the config numbered like the end of the model's name
(``loose_coupling_model_2`` -> ``config_2``), else the first of them. Each chart is one model
file and one config; each CSV value column is one line. Links and hard links are never read.

The charts are written as ``plots/<model>__<config>.svg`` into the result tree and returned
(bounded, see :mod:`..charts`), so the task store can keep them for the dashboard.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..charts import (
    MAX_CHARTS,
    MAX_SERIES_PER_CHART,
    Chart,
    Series,
    make_series,
    read_csv_series,
    render_svg,
    within_budget,
)
from ..charts.series import CsvColumns
from ..transfer.base import list_result_files, open_regular_file
from .config import ProxymodConfig

log = logging.getLogger(__name__)

PLOTS_DIR = "plots"
_TRAILING_NUMBER = re.compile(r"_(\d+)(?:_outputs)?$")
_YEARS = re.compile(r"\d+(?:_\d+)?")

#: A result tree's CSV files: relative path -> (size, mtime in ns), to tell what a model changed.
Snapshot = Mapping[PurePosixPath, tuple[int, float]]


def snapshot(result_dir: Path) -> Snapshot:
    """The CSV files of the result tree now."""
    return {
        item.relative_path: (item.size, item.mtime)
        for item in list_result_files(result_dir)
        if item.relative_path.suffix.lower() == ".csv" and item.relative_path.parts[0] != PLOTS_DIR
    }


def changed(before: Snapshot, after: Snapshot) -> list[PurePosixPath]:
    """The CSVs that are new or different in ``after``."""
    return sorted(path for path, state in after.items() if before.get(path) != state)


@dataclass(frozen=True)
class ModelOutputs:
    """The CSVs one model file wrote."""

    model: str
    files: Sequence[PurePosixPath]


def config_of(folder: PurePosixPath, configs: Sequence[ProxymodConfig]) -> str:
    """The config a proxymod model's output folder belongs to (see the module's docstring)."""
    holding = [
        config for config in configs if folder.parent == config.out_dir or folder == config.out_dir
    ]
    if not holding:
        return "outputs"
    if len(holding) > 1:
        found = _TRAILING_NUMBER.search(folder.name)
        for config in holding:
            if found and int(found.group(1)) == config.number:
                return config.name
    return holding[0].name


def series_name(stem: str, folder: str) -> str:
    """The series a CSV belongs to: proxymod's ``output1_<model>_<years>`` -> ``output1``.

    proxymod names its outputs after the model and the year(s) they hold; a tight coupling
    writes one file per year, and those files together are one series over the years. Any
    other file is a series of its own, named by its stem (less the model's name).
    """
    model = folder.removesuffix("_outputs")
    kind, marker, years = stem.partition(f"_{model}_")
    if model and marker and _YEARS.fullmatch(years):
        return kind
    return stem.replace(f"_{model}", "") if model and model != stem else stem


def _read(result_dir: Path, relative: PurePosixPath) -> CsvColumns | None:
    label = series_name(relative.stem, relative.parent.name)
    try:
        with io.TextIOWrapper(
            open_regular_file(result_dir / relative), encoding="utf-8", errors="replace"
        ) as handle:
            return read_csv_series(handle, label, relative.as_posix())
    except (OSError, ValueError) as exc:
        log.warning("could not read %s for a chart: %s", relative, exc)
        return None


@dataclass
class _Draft:
    """The series of one chart while they are gathered, merged by name."""

    x_names: set[str]
    y_names: set[str]
    series: dict[str, list[Series]]
    folders: set[str]


def _merged(parts: list[Series]) -> Series:
    if len(parts) == 1:
        return parts[0]
    points: dict[float, float | None] = {}
    for part in parts:  # in file order: a later file's value for the same x wins
        points.update(part.points)
    folders = sorted({str(PurePosixPath(part.source).parent) for part in parts})
    source = f"{len(parts)} files in {', '.join(folders)}"
    return make_series(
        parts[0].label, [(x, math.nan if y is None else y) for x, y in points.items()], source
    )


def collect(
    result_dir: Path, configs: Sequence[ProxymodConfig], outputs: Sequence[ModelOutputs]
) -> list[Chart]:
    """One chart per model file and config, from the CSVs each model file wrote."""
    drafts: dict[tuple[str, str], _Draft] = {}
    for written in outputs:
        for relative in written.files:
            key = (written.model, config_of(relative.parent, configs))
            if key not in drafts and len(drafts) >= MAX_CHARTS:
                continue
            columns = _read(result_dir, relative)
            if columns is None:
                continue
            draft = drafts.setdefault(key, _Draft(set(), set(), {}, set()))
            draft.x_names.add(columns.x_name)
            draft.y_names.update(columns.y_names)
            draft.folders.add(str(relative.parent))
            for one in columns.series:
                if one.label in draft.series or len(draft.series) < MAX_SERIES_PER_CHART:
                    draft.series.setdefault(one.label, []).append(one)
    charts = []
    for (model, config), draft in drafts.items():
        series = tuple(_merged(parts) for parts in draft.series.values())
        charts.append(
            Chart(
                model=model,
                config=config,
                series=series,
                x_label=_common(draft.x_names, "year"),
                y_label=_common(draft.y_names, "value"),
                note=f"{len(series)} series from {', '.join(sorted(draft.folders))}",
            )
        )
    return within_budget(charts)


def _common(names: set[str], default: str) -> str:
    return next(iter(names)) if len(names) == 1 else default


def write_plots(result_dir: Path, charts: Sequence[Chart]) -> None:
    """Write each chart as ``plots/<model>__<config>.svg`` (replacing what a model put there)."""
    plots = result_dir / PLOTS_DIR
    if plots.is_symlink() or (plots.exists() and not plots.is_dir()):
        plots.unlink()
    elif plots.is_dir():
        shutil.rmtree(plots)
    if not charts:
        return
    plots.mkdir()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for chart in charts:
        with os.fdopen(
            os.open(plots / chart.file_name, flags, 0o644), "w", encoding="utf-8"
        ) as out:
            out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            out.write(render_svg(chart))
            out.write("\n")
