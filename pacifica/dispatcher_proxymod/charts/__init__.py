"""Line charts of model output series, drawn on the server as SVG.

The dashboard and the result tree's ``plots/`` use the same code: :mod:`.series` reads and bounds
the series (what the task store keeps), :mod:`.chart` is one chart, :mod:`.svg` draws it.

Why our own small SVG writer and not a plotting library: we draw one kind of chart, and it must
be safe to inline into a page with a strict Content-Security-Policy and fast enough to draw on
every page view. pygal's SVGs carry inline script and, by default, a script from a CDN (blocked
by our policy, and no network is allowed); matplotlib brings numpy, Pillow and fonttools into
both the web process and the worker, takes about a second to import, and writes text as glyph
paths with random ids. About 250 lines of ``xml.etree`` code escape every label by construction,
render in well under a millisecond, and are deterministic, so tests compare exact points.
"""

from __future__ import annotations

from .chart import MAX_CHARTS, MAX_SERIES_PER_CHART, Chart, within_budget
from .series import MAX_POINTS, Series, make_series, read_csv_series
from .svg import render_svg

__all__ = [
    "MAX_CHARTS",
    "MAX_POINTS",
    "MAX_SERIES_PER_CHART",
    "Chart",
    "Series",
    "make_series",
    "read_csv_series",
    "render_svg",
    "within_budget",
]
