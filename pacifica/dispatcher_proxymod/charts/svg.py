"""Render a :class:`Chart` as a standalone SVG line chart.

Year on x, value on y, one ``<path class="series">`` per series (a value that is not a finite
number breaks the line; a point without neighbours gets a dot), axes with ticks and labels, the
title naming the model and the config, and a legend under the plot.

The document is built as an :mod:`xml.etree.ElementTree` tree and serialised by it, never by
pasting strings, so every label a model or an event chose (file and column names) is escaped by
construction. It uses presentation attributes only (no ``style``, no script), so it shows the
same inline in the dashboard under its Content-Security-Policy as it does on its own.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET  # we build and serialise, never parse
from collections.abc import Sequence

from .axes import Axis, make_axis, tick_label
from .chart import Chart
from .series import Point, Series

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 720
PLOT_HEIGHT = 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 72, 20, 56, 44
LEGEND_ROW, LEGEND_COLUMN = 18, 230
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
#: Okabe-Ito, a palette people with colour-vision deficiencies tell apart; past eight series the
#: dash patterns differ too.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999933", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
#: Most points drawn per line.
DRAWN_POINTS = 1200
INK, GRID, MUTED = "#1f2328", "#e5e7eb", "#57606a"


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(
        parent, tag, {k.rstrip("_").replace("_", "-"): v for k, v in attributes.items()}
    )
    if text is not None:
        element.text = text
    return element


def _segments(
    points: Sequence[Point], x_axis: Axis, y_axis: Axis, box: tuple[float, ...]
) -> list[list[tuple[float, float]]]:
    """The screen coordinates of ``points``, split where a value is missing."""
    left, top, width, height = box
    segments: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(
            (left + x_axis.fraction(x) * width, top + (1 - y_axis.fraction(y)) * height)
        )
    return [segment for segment in segments if segment]


def path_data(segments: list[list[tuple[float, float]]]) -> str:
    """SVG path data: ``M`` to each segment's first point, ``L`` through the rest."""
    parts = []
    for segment in segments:
        (x0, y0), rest = segment[0], segment[1:]
        parts.append(f"M{_number(x0)},{_number(y0)}")
        parts.extend(f"L{_number(x)},{_number(y)}" for x, y in rest)
    return " ".join(parts)


def _axes(
    svg: ET.Element, chart: Chart, x_axis: Axis, y_axis: Axis, box: tuple[float, ...]
) -> None:
    left, top, width, height = box
    group = _sub(svg, "g", class_="axes", font_size="13", fill=MUTED)
    x_step = x_axis.ticks[1] - x_axis.ticks[0] if len(x_axis.ticks) > 1 else 1.0
    y_step = y_axis.ticks[1] - y_axis.ticks[0] if len(y_axis.ticks) > 1 else 1.0
    for tick in y_axis.ticks:
        y = top + (1 - y_axis.fraction(tick)) * height
        _sub(
            group,
            "line",
            x1=_number(left),
            x2=_number(left + width),
            y1=_number(y),
            y2=_number(y),
            stroke=GRID,
        )
        _sub(
            group,
            "text",
            tick_label(tick, y_step),
            x=_number(left - 8),
            y=_number(y + 4),
            text_anchor="end",
        )
    for tick in x_axis.ticks:
        x = left + x_axis.fraction(tick) * width
        _sub(
            group,
            "line",
            x1=_number(x),
            x2=_number(x),
            y1=_number(top + height),
            y2=_number(top + height + 5),
            stroke=MUTED,
        )
        _sub(
            group,
            "text",
            tick_label(tick, x_step),
            x=_number(x),
            y=_number(top + height + 18),
            text_anchor="middle",
        )
    _sub(
        group,
        "rect",
        x=_number(left),
        y=_number(top),
        width=_number(width),
        height=_number(height),
        fill="none",
        stroke=MUTED,
    )
    _sub(
        group,
        "text",
        chart.x_label,
        x=_number(left + width / 2),
        y=_number(top + height + 36),
        text_anchor="middle",
        fill=INK,
        class_="x-label",
    )
    y_middle = top + height / 2
    _sub(
        group,
        "text",
        chart.y_label,
        x="16",
        y=_number(y_middle),
        text_anchor="middle",
        fill=INK,
        class_="y-label",
        transform=f"rotate(-90 16 {_number(y_middle)})",
    )


def _series(
    svg: ET.Element, chart: Chart, x_axis: Axis, y_axis: Axis, box: tuple[float, ...]
) -> None:
    group = _sub(svg, "g", class_="lines", fill="none", stroke_width="2", stroke_linejoin="round")
    for index, series in enumerate(chart.series):
        colour, dash = COLOURS[index % len(COLOURS)], DASHES[(index // len(COLOURS)) % len(DASHES)]
        segments = _segments(series.points, x_axis, y_axis, box)
        attributes = {
            "class": "series",
            "stroke": colour,
            "data-series": series.label,
            "d": path_data(segments) or "M0,0",
        }
        if dash:
            attributes["stroke-dasharray"] = dash
        if not segments:
            attributes["visibility"] = "hidden"
        line = ET.SubElement(group, "path", attributes)
        _sub(line, "title", _describe(series))
        for segment in segments:
            if len(segment) == 1:
                (x, y) = segment[0]
                _sub(
                    group, "circle", cx=_number(x), cy=_number(y), r="3", fill=colour, class_="dot"
                )


def _describe(series: Series) -> str:
    shown = len(series.points)
    if series.total > shown:
        return f"{series.label} ({shown} of {series.total} points, min/max kept)"
    return f"{series.label} ({series.total} points)"


def _legend(svg: ET.Element, chart: Chart, top: float) -> None:
    group = _sub(svg, "g", class_="legend", font_size="13", fill=INK)
    columns = max(1, (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) // LEGEND_COLUMN)
    for index, series in enumerate(chart.series):
        row, column = divmod(index, columns)
        x = MARGIN_LEFT + column * LEGEND_COLUMN
        y = top + row * LEGEND_ROW
        colour, dash = COLOURS[index % len(COLOURS)], DASHES[(index // len(COLOURS)) % len(DASHES)]
        swatch = _sub(
            group,
            "line",
            x1=_number(x),
            x2=_number(x + 22),
            y1=_number(y - 4),
            y2=_number(y - 4),
            stroke=colour,
            stroke_width="3",
        )
        if dash:
            swatch.set("stroke-dasharray", dash)
        label = (
            series.label
            if len(series.label) <= 30
            else series.label[:29] + "\N{HORIZONTAL ELLIPSIS}"
        )
        _sub(group, "text", label, x=_number(x + 28), y=_number(y))


def render_svg(chart: Chart) -> str:
    """The chart as an SVG document (a string, no XML declaration, so it can be inlined).

    Each line is drawn from at most :data:`DRAWN_POINTS` points (min/max kept), about two per
    pixel of the plot's width: more would not show, and would make the page slow.
    """
    chart = chart.bounded(DRAWN_POINTS)
    points = [point for series in chart.series for point in series.points]
    x_axis = make_axis(
        (x for x, _ in points), integer=all(float(x).is_integer() for x, _ in points)
    )
    y_axis = make_axis(y for _, y in points if y is not None)
    columns = max(1, (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) // LEGEND_COLUMN)
    legend_rows = math.ceil(len(chart.series) / columns)
    height = MARGIN_TOP + PLOT_HEIGHT + MARGIN_BOTTOM + legend_rows * LEGEND_ROW + 8
    box = (MARGIN_LEFT, MARGIN_TOP, WIDTH - MARGIN_LEFT - MARGIN_RIGHT, PLOT_HEIGHT)
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "viewBox": f"0 0 {WIDTH} {height}",
            "width": str(WIDTH),
            "height": str(height),
            "class": "chart",
            "role": "img",
            "font-family": FONT,
        },
    )
    _sub(svg, "title", chart.title)
    _sub(svg, "rect", width=str(WIDTH), height=str(height), fill="#ffffff")
    _sub(
        svg,
        "text",
        chart.title,
        x=str(MARGIN_LEFT),
        y="24",
        font_size="17",
        font_weight="600",
        fill=INK,
        class_="title",
    )
    count = len(chart.series)
    subtitle = chart.note or f"{count} series"
    _sub(
        svg, "text", subtitle, x=str(MARGIN_LEFT), y="42", font_size="13", fill=MUTED, class_="note"
    )
    _axes(svg, chart, x_axis, y_axis, box)
    if any(y is not None for _, y in points):
        _series(svg, chart, x_axis, y_axis, box)
    else:
        left, top, width, plot_height = box
        _sub(
            svg,
            "text",
            "no data to draw",
            x=_number(left + width / 2),
            y=_number(top + plot_height / 2),
            text_anchor="middle",
            fill=MUTED,
            class_="empty",
        )
    _legend(svg, chart, MARGIN_TOP + PLOT_HEIGHT + MARGIN_BOTTOM + 12)
    return ET.tostring(svg, encoding="unicode")
