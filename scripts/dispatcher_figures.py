"""A pytest plugin that records what became of every event the end-to-end suites sent.

Load it with ``-p dispatcher_figures`` (``scripts/`` on ``PYTHONPATH``) and name the output file
in ``DISPATCHER_FIGURES``; each test appends one JSON line there. ``scripts/summary.py`` adds
the lines of a whole ``make check`` up.

Where the numbers come from, so they can be trusted:

* Every task store a test opens goes through ``store.open_database``; the plugin notes each
  URL (a store a module-scoped fixture opened stays noted for the module's later tests). Just
  before a test's fixtures are torn down (workers still running, databases still there) it
  reads the task rows of those stores with a connection of its own; each row counts once.
* **accepted**: task rows (each is an event the service answered 2xx to);
  **completed**: status 200; **failed**: 422 or 500, counted by ``error_type``;
  **lost**: rows still 202 or 102 when an end-to-end test ends (its worker had every chance).
* **duplicates run**: extra deliveries of one task: ``manifest.json`` files under the result
  folders of the test's deliveries that name the same task (local transfer only).
* **escapes**: failed tests of the escape suites (``test_escapes.py``, ``test_sandbox.py``);
  their strict xfails are listed apart: "known bug" ones count as escapes, "known gap" ones
  (limits of process isolation, documented in SECURITY.md) do not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: Suites whose tests run events through workers: every row must end final there.
END_TO_END = ("tests/test_e2e.py", "tests/fault/", "tests/integration/")
#: Suites whose failures are sandbox escapes.
ESCAPE_SUITES = ("tests/test_escapes.py", "tests/test_sandbox.py")
FIGURES_VARIABLE = "DISPATCHER_FIGURES"

#: Task store URL -> the test module that opened it (a module-scoped service serves many tests).
_opened: dict[str, str] = {}
#: (store URL, task id) of every row already counted, so a shared store counts each task once.
_counted: set[tuple[str, str]] = set()
_current_module = ""
_FINAL = ("200 OK", "422 Unprocessable Entity", "500 Internal Server Error")


def _output_path() -> Path | None:
    value = os.environ.get(FIGURES_VARIABLE)
    return Path(value) if value else None


def _append(record: dict[str, Any]) -> None:
    path = _output_path()
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    """Note the URL of every task store opened in this process."""
    from pacifica.dispatcher_proxymod import store

    original = store.open_database
    if getattr(original, "_figures_wrapped", False):
        return

    def recording_open(settings: Any) -> Any:
        _opened[str(settings.database_url)] = _current_module
        return original(settings)

    recording_open._figures_wrapped = True  # type: ignore[attr-defined]
    store.open_database = recording_open


def _rows(url: str) -> list[dict[str, Any]]:
    """The task rows of the store at ``url``, read over a connection of our own."""
    from playhouse.db_url import connect

    database = connect(url)
    try:
        database.connect()
        cursor = database.execute_sql(
            "SELECT id, status, route, error_type, result_location FROM dispatcher_task"
        )
        names = ("id", "status", "route", "error_type", "result_location")
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        database.close()


def _deliveries(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many delivered manifests name each task, under the folders its deliveries went to."""
    folders = {
        Path(row["result_location"]).parent
        for row in rows
        if row["result_location"] and Path(row["result_location"]).is_dir()
    }
    counts: dict[str, int] = {}
    for folder in folders:
        for manifest in folder.glob("*/manifest.json"):
            try:
                task = json.loads(manifest.read_text(encoding="utf-8")).get("task")
            except (OSError, ValueError):
                continue
            if isinstance(task, str):
                counts[task] = counts.get(task, 0) + 1
    return counts


def _snapshot(nodeid: str, urls: list[str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for url in urls:
        try:
            found = _rows(url)
        except Exception as exc:  # a dropped database: say so rather than guess
            problems.append(f"{url.split('@')[-1]}: {type(exc).__name__}: {exc}")
            continue
        rows += [row for row in found if (url, row["id"]) not in _counted]
        _counted.update((url, row["id"]) for row in found)
    failed: dict[str, int] = {}
    for row in rows:
        if row["status"] in _FINAL[1:]:
            reason = f"{row['status'][:3]} {row['error_type'] or 'unknown'}"
            failed[reason] = failed.get(reason, 0) + 1
    deliveries = _deliveries(rows)
    return {
        "kind": "tasks",
        "test": nodeid,
        "accepted": len(rows),
        "completed": sum(row["status"] == "200 OK" for row in rows),
        "failed": failed,
        "lost": [row["id"] for row in rows if row["status"] not in _FINAL],
        "duplicates": sum(count - 1 for count in deliveries.values() if count > 1),
        "unreadable": problems,
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Forget the stores of other modules; keep those a module-scoped fixture still serves."""
    global _current_module
    _current_module = str(item.path)
    for url, module in list(_opened.items()):
        if module != _current_module:
            del _opened[url]
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Read the stores of an end-to-end test before its fixtures stop workers and drop them."""
    # a test marked as an expected failure documents a known limit (docs/reliability.md):
    # its events are reported by that test, not counted here
    expected_failure = item.get_closest_marker("xfail") is not None
    if (
        _output_path() is not None
        and item.nodeid.startswith(END_TO_END)
        and _opened
        and not expected_failure
    ):
        _append(_snapshot(item.nodeid, list(_opened)))
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the escape suites' outcomes."""
    if _output_path() is None or not report.nodeid.startswith(ESCAPE_SUITES):
        return
    if report.when != "call" and not (report.failed or report.skipped):
        return
    if hasattr(report, "wasxfail"):
        outcome = "known" if report.skipped else "fixed"  # xfailed / xpassed (strict fails)
    elif report.failed:
        outcome = "escape"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "held"
    else:
        return
    reason = str(getattr(report, "wasxfail", "")) or None
    _append({"kind": "escape", "test": report.nodeid, "outcome": outcome, "reason": reason})
