"""charts.svg and charts.axes: known series give known paths; odd series still render."""

from __future__ import annotations

import math
import re
import sys
import xml.etree.ElementTree as ET

import pytest

from pacifica.dispatcher_proxymod.charts import Chart, make_series, render_svg
from pacifica.dispatcher_proxymod.charts.axes import make_axis, tick_label
from pacifica.dispatcher_proxymod.charts.svg import MARGIN_LEFT, MARGIN_TOP, PLOT_HEIGHT, WIDTH

NS = {"svg": "http://www.w3.org/2000/svg"}


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output


def _paths(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//svg:path[@class='series']", NS)


def _chart(*series: list[tuple[float, float]], labels: list[str] | None = None) -> Chart:
    names = labels or [f"s{n}" for n in range(len(series))]
    return Chart(
        "model", "config_1", tuple(make_series(n, s) for n, s in zip(names, series, strict=True))
    )


def test_known_series_give_the_expected_points() -> None:
    # x 2000..2100 and y 0..10 are already nice: the plot box maps them exactly
    root = _parse(render_svg(_chart([(2000, 0), (2050, 5), (2100, 10)], [(2000, 10), (2100, 0)])))
    width = WIDTH - MARGIN_LEFT - 20
    left, top, bottom = MARGIN_LEFT, MARGIN_TOP, MARGIN_TOP + PLOT_HEIGHT
    first, second = _paths(root)
    mid = left + width / 2
    expected = f"M{left},{bottom} L{mid:g},{top + PLOT_HEIGHT / 2:g} L{left + width},{top}"
    assert first.get("d") == expected
    assert second.get("d") == f"M{left},{top} L{left + width},{bottom}"
    assert first.get("stroke") != second.get("stroke")
    assert first.get("data-series") == "s0"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "model \N{MIDDLE DOT} config_1" in texts
    assert {"2000", "2040", "2100", "0", "10", "year", "value", "s0", "s1"} <= set(texts)


def test_a_gap_breaks_the_line_into_subpaths() -> None:
    root = _parse(render_svg(_chart([(1, 1), (2, 2), (3, math.nan), (4, 4), (5, 5)])))
    (path,) = _paths(root)
    assert path.get("d", "").count("M") == 2


@pytest.mark.parametrize(
    "points",
    [
        [],
        [(2010, 1.0)],
        [(2010, math.nan), (2015, math.inf), (2020, -math.inf)],
        [(2010, sys.float_info.max), (2011, -sys.float_info.max)],
        [(1e-320, 1e-320), (2e-320, 3e-320)],
        [(2010, 5.0), (2011, 5.0)],
        [(float(x), float(x % 97)) for x in range(200_000)],
    ],
    ids=["empty", "single", "not-finite", "float-limits", "denormal", "constant", "huge"],
)
def test_odd_series_render(points: list[tuple[float, float]]) -> None:
    svg = render_svg(_chart(points))
    root = _parse(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "nan" not in svg.lower().replace("span", "") and "inf" not in svg
    finite = [p for p in points if math.isfinite(p[1])]
    if not finite:
        assert root.find(".//svg:text[@class='empty']", NS) is not None
    if len(finite) == 1:
        assert root.find(".//svg:circle[@class='dot']", NS) is not None
    assert len(svg) < 200_000


def test_no_series_at_all_says_so() -> None:
    root = _parse(render_svg(Chart("m", "config_1", ())))
    assert root.find(".//svg:text[@class='empty']", NS) is not None
    assert _paths(root) == []


def test_hostile_labels_are_escaped() -> None:
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">&'
    chart = Chart(hostile, "config_1", (make_series(hostile, [(1, 1), (2, 2)]),), hostile, hostile)
    svg = render_svg(chart)
    assert "<script" not in svg and "<img" not in svg
    assert "&lt;script&gt;" in svg
    root = _parse(svg)
    assert _paths(root)[0].get("data-series") == hostile
    assert not root.findall(".//svg:script", NS)


def test_axis_ticks_are_nice_and_cover_the_values() -> None:
    axis = make_axis([2010, 2100], integer=True)
    assert axis.ticks == (2000, 2020, 2040, 2060, 2080, 2100)
    axis = make_axis([0.42, 1.97])
    assert axis.low <= 0.42 and axis.high >= 1.97
    assert all(re.fullmatch(r"\d(\.\d)?", tick_label(t, 0.2)) for t in axis.ticks)
    assert make_axis([]).ticks == (0.0, 0.5, 1.0)
    assert make_axis([3.0]).low < 3.0 < make_axis([3.0]).high


def test_tick_labels() -> None:
    assert tick_label(2010.0, 10.0) == "2010"
    assert tick_label(0.5, 0.5) == "0.5"
    assert tick_label(1.25, 0.25) == "1.25"
    assert tick_label(1e12, 2e11) == "1e+12"
    assert tick_label(0.0, 1.0) == "0"
