"""Add up the figures one ``make check`` run recorded, print them, and judge them.

Usage: ``python scripts/summary.py FIGURES_FILE`` (JSON lines written by
``scripts/dispatcher_figures.py``). Exit status 1 when any event was lost, any task ran twice,
or any escape test failed or is a known open escape; 0 otherwise.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of the file (none when it does not exist)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def summarise(records: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """The lines to print and whether the run is acceptable."""
    tasks = [record for record in records if record["kind"] == "tasks"]
    escapes = [record for record in records if record["kind"] == "escape"]
    failed: Counter[str] = Counter()
    for record in tasks:
        failed.update(record["failed"])
    lost = [(record["test"], task) for record in tasks for task in record["lost"]]
    duplicates = sum(record["duplicates"] for record in tasks)
    unreadable = [problem for record in tasks for problem in record["unreadable"]]
    outcomes = Counter(record["outcome"] for record in escapes)
    escaped = [r["test"] for r in escapes if r["outcome"] in ("escape", "fixed")]
    open_xfails = [r for r in escapes if r["outcome"] == "known"]
    gaps = [r["test"] for r in open_xfails if str(r.get("reason")).startswith("known gap")]
    known = [r["test"] for r in open_xfails if r["test"] not in gaps]
    lines = [
        "== figures of this run",
        f"end-to-end tests counted: {len(tasks)}",
        f"events accepted:          {sum(record['accepted'] for record in tasks)}",
        f"completed (200):          {sum(record['completed'] for record in tasks)}",
        f"failed, with reason:      {sum(failed.values())}",
    ]
    lines += [f"    {count:5d}  {reason}" for reason, count in sorted(failed.items())]
    lines += [
        f"lost (must be 0):         {len(lost)}",
        *[f"    {task} in {test}" for test, task in lost],
        f"duplicates run (must be 0): {duplicates}",
        f"escape tests held:        {outcomes['held']} (skipped: {outcomes['skipped']})",
        f"escapes (must be 0):      {len(escaped) + len(known)}",
        *[f"    failed: {test}" for test in escaped],
        *[f"    known, open (strict xfail): {test}" for test in known],
    ]
    if gaps:
        lines.append(f"known gaps of process isolation (SECURITY.md, not escapes): {len(gaps)}")
        lines += [f"    {test}" for test in gaps]
    if unreadable:
        lines.append(f"stores that could not be read: {len(unreadable)}")
        lines += [f"    {problem}" for problem in unreadable]
    if not tasks:
        lines.append("no end-to-end test recorded figures: were the suites run with the plugin?")
    ok = bool(tasks) and not lost and duplicates == 0 and not escaped and not known
    lines.append("== figures: OK" if ok else "== figures: NOT OK")
    return lines, ok


def main(argv: list[str]) -> int:
    """Print the summary of the file named in ``argv``."""
    if len(argv) != 1:
        print("usage: summary.py FIGURES_FILE", file=sys.stderr)
        return 2
    lines, ok = summarise(read_records(Path(argv[0])))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
