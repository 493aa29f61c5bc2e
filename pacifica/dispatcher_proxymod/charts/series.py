"""Output series as the charts keep them: read from a CSV, bounded, and as JSON for the store.

A :class:`Series` is what one line of a chart shows: a label and ``(x, y)`` points sorted by x,
``y`` None where the value is not a finite number (the line breaks there). A series with more
than :data:`MAX_POINTS` points is downsampled by :func:`downsample`, which keeps the first and
the last point and, in each of ``MAX_POINTS // 2`` buckets, the lowest and the highest point,
so peaks and dips stay visible. Reading stops after :data:`MAX_ROWS` rows of one file, so a
model's huge output costs bounded time and memory; ``total`` says how many points there were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

#: Most points kept per series (above it, min/max downsampling).
MAX_POINTS = 2000
#: Most rows read from one CSV file.
MAX_ROWS = 1_000_000
#: Most characters read from one CSV file, and from one of its lines.
MAX_BYTES = 64 * 1024 * 1024
MAX_LINE = 64 * 1024
#: Most value columns of one CSV drawn (one series each).
MAX_COLUMNS = 20
#: Longest label or axis name kept (characters).
MAX_LABEL = 120

Point = tuple[float, float | None]


def clip_label(text: str) -> str:
    """``text`` without control characters, at most :data:`MAX_LABEL` characters."""
    cleaned = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
    return (
        cleaned
        if len(cleaned) <= MAX_LABEL
        else cleaned[: MAX_LABEL - 1] + "\N{HORIZONTAL ELLIPSIS}"
    )


@dataclass(frozen=True)
class Series:
    """One line of a chart."""

    label: str
    points: tuple[Point, ...]
    total: int  #: points before downsampling
    source: str = ""  #: the result file it was read from, relative to the result tree

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite values are already None)."""
        return {
            "label": self.label,
            "source": self.source,
            "total": self.total,
            "points": [[x, y] for x, y in self.points],
        }

    def bounded(self, max_points: int) -> Series:
        """This series with at most ``max_points`` points (min/max downsampled)."""
        if len(self.points) <= max_points:
            return self
        return Series(
            self.label, tuple(downsample(self.points, max_points)), self.total, self.source
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        """The series :meth:`to_json` wrote."""
        points = tuple(
            (float(x), None if y is None else float(y)) for x, y in data.get("points", [])
        )
        total = int(data.get("total", len(points)))
        return cls(clip_label(str(data["label"])), points, total, str(data.get("source", "")))


def _compact(value: float) -> float:
    """Seven significant digits: plenty for a picture, half the JSON."""
    return float(f"{value:.7g}")


def make_series(label: str, points: Iterable[tuple[float, float]], source: str = "") -> Series:
    """A bounded series of ``points``: non-finite x dropped, sorted by x, downsampled."""
    kept = sorted(
        (
            (_compact(x), _compact(y) if math.isfinite(y) else None)
            for x, y in points
            if math.isfinite(x)
        ),
        key=lambda point: point[0],
    )
    return Series(clip_label(label), tuple(downsample(kept, MAX_POINTS)), len(kept), source)


def downsample(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most ``max_points`` of ``points`` (sorted by x), keeping each bucket's min and max."""
    if len(points) <= max_points:
        return list(points)
    buckets = max(1, (max_points - 2) // 2)
    inner = points[1:-1]
    kept: list[Point] = [points[0]]
    for number in range(buckets):
        bucket = inner[number * len(inner) // buckets : (number + 1) * len(inner) // buckets]
        if not bucket:
            continue
        finite = [(index, y) for index, (_, y) in enumerate(bucket) if y is not None]
        if not finite:  # a gap: keep one point of it, so the line still breaks here
            kept.append(bucket[0])
            continue
        low = min(finite, key=lambda item: item[1])[0]
        high = max(finite, key=lambda item: item[1])[0]
        kept.extend(bucket[index] for index in sorted({low, high}))
    kept.append(points[-1])
    return kept


@dataclass(frozen=True)
class CsvColumns:
    """The series of one CSV file and the names of its columns."""

    x_name: str
    y_names: tuple[str, ...]
    series: tuple[Series, ...]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_csv_series(handle: TextIO, label: str, source: str) -> CsvColumns | None:
    """The series of a CSV whose first column is x and whose other columns are values.

    None when it is not such a file (no header with two or more names, or no numeric row).
    Rows that do not parse are skipped; reading stops after :data:`MAX_ROWS` rows or
    :data:`MAX_BYTES` characters. Each value column is one series: ``label`` for a file with
    one value column, ``label: column`` for more.
    """
    header = handle.readline(MAX_LINE).strip().split(",")
    if len(header) < 2 or _number(header[0]) is not None:
        return None
    names = [clip_label(name.strip()) for name in header[1 : 1 + MAX_COLUMNS]]
    columns: list[list[tuple[float, float]]] = [[] for _ in names]
    read = 0
    for _ in range(MAX_ROWS):
        line = handle.readline(MAX_LINE)
        read += len(line)
        if not line or read > MAX_BYTES:
            break
        fields = line.strip().split(",")
        x = _number(fields[0])
        if x is None:
            continue
        for index, text in enumerate(fields[1 : 1 + len(names)]):
            y = _number(text)
            if y is not None:
                columns[index].append((x, y))
    if not any(columns):
        return None
    series = tuple(
        make_series(label if len(names) == 1 else f"{label}: {name}", points, source)
        for name, points in zip(names, columns, strict=True)
    )
    return CsvColumns(clip_label(header[0].strip()), tuple(names), series)
