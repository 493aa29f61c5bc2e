"""charts.series and charts.chart: reading CSV series, bounding them, JSON round trips."""

from __future__ import annotations

import io
import json
import math

from pacifica.dispatcher_proxymod.charts import Chart, make_series, read_csv_series, within_budget
from pacifica.dispatcher_proxymod.charts.series import MAX_LABEL, MAX_POINTS, Series, downsample


def test_csv_is_read_sorted_with_gaps_for_values_that_are_not_finite() -> None:
    text = "year,value\n2020,2.5\n2010,1\nbad,row\n2015,nan\n2025,inf\n2030,-1e3\n\n"
    columns = read_csv_series(io.StringIO(text), "output1", "outputs/a.csv")
    assert columns is not None
    assert (columns.x_name, columns.y_names) == ("year", ("value",))
    (series,) = columns.series
    assert series.label == "output1"
    assert series.source == "outputs/a.csv"
    assert series.points == ((2010, 1.0), (2015, None), (2020, 2.5), (2025, None), (2030, -1000.0))


def test_several_value_columns_are_several_series() -> None:
    columns = read_csv_series(io.StringIO("t,a,b\n1,2,3\n2,4,\n"), "f", "f.csv")
    assert columns is not None
    assert [s.label for s in columns.series] == ["f: a", "f: b"]
    assert columns.series[1].points == ((1.0, 3.0),)


def test_files_that_are_no_series_are_none() -> None:
    for text in ("", "just one column\n1\n", "year,value\n", "1,2\n3,4\n", "year,value\nx,y\n"):
        assert read_csv_series(io.StringIO(text), "f", "f.csv") is None, text


def test_downsampling_keeps_the_ends_and_every_bucket_extreme() -> None:
    points = [(float(x), math.sin(x / 50) * 100) for x in range(100_000)]
    points[31_337] = (31_337.0, 1e9)  # a spike
    points[77_000] = (77_000.0, -1e9)  # a dip
    kept = downsample(points, MAX_POINTS)
    assert len(kept) <= MAX_POINTS
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (31_337.0, 1e9) in kept and (77_000.0, -1e9) in kept
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)
    series = make_series("s", points)
    assert series.total == 100_000 and len(series.points) <= MAX_POINTS


def test_a_short_series_is_kept_whole() -> None:
    points = [(1.0, 2.0), (2.0, None), (3.0, 4.0)]
    assert downsample(points, 10) == points


def test_labels_are_bounded_and_lose_control_characters() -> None:
    series = make_series("a\x00b\n" + "x" * 500, [(1, 1)])
    assert len(series.label) == MAX_LABEL
    assert "\x00" not in series.label and "\n" not in series.label


def test_chart_json_round_trip_and_file_name() -> None:
    chart = Chart(
        "loose_coupling",
        "config_2",
        (make_series("output1", [(2010, 1.5), (2015, math.nan)], "outputs/x.csv"),),
        note="1 series",
    )
    data = json.loads(json.dumps(chart.to_json()))  # strict JSON: no NaN in it
    assert Chart.from_json(data) == chart
    assert chart.file_name == "loose_coupling__config_2.svg"
    assert chart.title == "loose_coupling \N{MIDDLE DOT} config_2"


def test_a_task_s_charts_are_bounded_together() -> None:
    big = tuple(make_series(f"s{n}", [(x, x) for x in range(5000)]) for n in range(40))
    charts = [Chart("m", f"config_{n}", big) for n in range(3)]
    bounded = within_budget(charts, budget=30_000)
    assert sum(len(s.points) for c in bounded for s in c.series) <= 30_000
    assert all(s.total == 5000 for c in bounded for s in c.series)
    assert within_budget(charts[:1], budget=10**9) == charts[:1]


def test_series_from_json_tolerates_missing_fields() -> None:
    assert Series.from_json({"label": "x"}) == Series("x", (), 0, "")
