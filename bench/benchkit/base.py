"""Paths, the error type and the figures every benchmark prints (machine facts, tables)."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"
EXAMPLES = ROOT / "examples"
EXAMPLE_EVENT = EXAMPLES / "event.json"
EXAMPLE_DATA = EXAMPLES / "data"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MIB = 1024 * 1024


class BenchError(Exception):
    """A benchmark could not run or found the service misbehaving."""


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def ratio(value: float, baseline: float) -> float:
    """``value / baseline`` (NaN when the baseline is 0)."""
    return value / baseline if baseline else float("nan")


def machine() -> dict[str, Any]:
    """Date, CPU count and model, Python and load: the facts every report starts with."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def print_machine() -> None:
    """One line with the machine facts."""
    facts = machine()
    print(
        f"# {facts['date']}  nproc={facts['nproc']}  cpu={facts['cpu']}  "
        f"python={facts['python']}  load(1m)={facts['loadavg_1m']}",
        flush=True,
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (so it can be pasted into the README as is)."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    sys.stdout.flush()
