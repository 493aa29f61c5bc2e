"""Axis ranges, "nice" tick values (1, 2 or 5 times a power of ten) and their labels.

Works for every finite range, including a single value and values near the float limits
(spans are computed on halves, so ``max - min`` never overflows).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass

#: About how many ticks an axis gets.
TARGET_TICKS = 6


@dataclass(frozen=True)
class Axis:
    """A linear mapping of ``[low, high]`` and its ticks."""

    low: float
    high: float
    ticks: tuple[float, ...]

    def fraction(self, value: float) -> float:
        """Where ``value`` lies between low (0.0) and high (1.0)."""
        half_span = self.high / 2 - self.low / 2
        return (value / 2 - self.low / 2) / half_span


def _nice(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= ``value`` (> 0)."""
    exponent = math.floor(math.log10(value))
    for factor in (1.0, 2.0, 5.0, 10.0):
        candidate = factor * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)


def make_axis(values: Iterable[float], integer: bool = False) -> Axis:
    """An axis covering ``values`` (finite ones), widened to nice ticks.

    With ``integer`` (years), the tick step is a whole number. No values: ``[0, 1]``.
    """
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return Axis(0.0, 1.0, (0.0, 0.5, 1.0))
    low, high = min(finite), max(finite)
    if low == high:  # one value: a band around it
        pad = max(abs(low) * 0.05, 1.0)
        low, high = max(low - pad, -sys.float_info.max), min(high + pad, sys.float_info.max)
    half_span = high / 2 - low / 2
    if half_span > 1e306:  # near the float limits: evenly spaced ticks, no widening
        parts = TARGET_TICKS - 1
        ticks = tuple(low * (1 - k / parts) + high * (k / parts) for k in range(parts + 1))
        return Axis(low, high, ticks)
    step = _nice(half_span * 2 / (TARGET_TICKS - 1))
    if integer:
        step = max(1.0, float(round(step)))
    first, last = math.floor(low / step), math.ceil(high / step)
    ticks = tuple(k * step for k in range(first, last + 1))
    return Axis(ticks[0], ticks[-1], ticks)


def tick_label(value: float, step: float) -> str:
    """A short label: whole numbers without ``.0``, else as many digits as the step needs."""
    if value == 0:
        return "0"
    magnitude = max(abs(value), abs(step))
    if magnitude >= 1e6 or magnitude < 1e-4:
        return f"{value:.3g}"
    if float(value).is_integer() and float(step).is_integer():
        return str(int(value))
    decimals = max(0, -math.floor(math.log10(abs(step))) + 1) if step else 3
    text = f"{value:.{min(decimals, 6)}f}".rstrip("0").rstrip(".")
    return text or "0"
