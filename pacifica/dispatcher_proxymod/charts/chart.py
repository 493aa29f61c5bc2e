"""One chart: the series of one model and one config, with its title and axis names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .series import Series, clip_label

#: Most charts kept per task, and most series per chart: with ``MAX_POINTS`` this bounds what
#: a task's charts take in the store.
MAX_CHARTS = 60
MAX_SERIES_PER_CHART = 40
#: Most points of all the charts of one task together (about 4 MiB of JSON): past it, every
#: series is downsampled to its share.
MAX_TASK_POINTS = 200_000


@dataclass(frozen=True)
class Chart:
    """A line chart of output series: one model (file) and one config."""

    model: str
    config: str
    series: tuple[Series, ...]
    x_label: str = "year"
    y_label: str = "value"
    note: str = ""  #: a line under the title, e.g. where the series came from

    @property
    def title(self) -> str:
        """The chart's title, naming both the model and the config."""
        return f"{self.model} \N{MIDDLE DOT} {self.config}"

    @property
    def file_name(self) -> str:
        """The chart's file name in the result tree's ``plots/``."""
        return f"{self.model}__{self.config}.svg"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, what the store keeps."""
        return {
            "model": self.model,
            "config": self.config,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "note": self.note,
            "series": [series.to_json() for series in self.series],
        }

    def bounded(self, max_points: int) -> Chart:
        """This chart with at most ``max_points`` points per series."""
        series = tuple(one.bounded(max_points) for one in self.series)
        return Chart(self.model, self.config, series, self.x_label, self.y_label, self.note)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chart:
        """The chart :meth:`to_json` wrote."""
        return cls(
            model=clip_label(str(data["model"])),
            config=clip_label(str(data["config"])),
            series=tuple(Series.from_json(item) for item in data.get("series", [])),
            x_label=clip_label(str(data.get("x_label", "year"))),
            y_label=clip_label(str(data.get("y_label", "value"))),
            note=clip_label(str(data.get("note", ""))),
        )


def within_budget(charts: list[Chart], budget: int = MAX_TASK_POINTS) -> list[Chart]:
    """``charts`` with their points, all together, within ``budget`` (each series its share)."""
    total = sum(len(series.points) for chart in charts for series in chart.series)
    if total <= budget:
        return charts
    count = sum(len(chart.series) for chart in charts)
    share = max(16, budget // max(count, 1))
    return [chart.bounded(share) for chart in charts]
