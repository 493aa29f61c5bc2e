"""The dashboard's server time with many runs: the list of 50 and run pages, against GET /.

Fills the task store with ``--rows`` tasks (the example event, states mixed as in a busy
deployment, created over 30 days), one of them with the 9 charts of the example run and one
with the most chart points a task may keep, then starts the dispatcher's real web server and
times, over keep-alive HTTP on loopback, alternating (A B A B ...):

* ``GET /`` (the JSON API's first page of 50: the baseline),
* ``GET /ui/`` (the list of 50 and the counts by state),
* ``GET /ui/?state=failed`` and a deep page (offset 50,000),
* ``GET /ui/task/<id>`` with 9 charts and with the largest charts a task may hold.

Client wall time includes the loopback round trip, so it bounds the server time from above.
Prints Markdown tables of medians and 95th percentiles.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import (
    dispatcher_env,
    example_event,
    make_setup,
    print_machine,
    print_table,
    scratch,
    start_web,
)

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.charts import (
    MAX_POINTS,
    Chart,
    make_series,
    within_budget,
)
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus

#: How the tasks' statuses are mixed (a deployment that mostly works).
MIX = (
    (TaskStatus.OK, 0.80),
    (TaskStatus.FAILED, 0.08),
    (TaskStatus.UNPROCESSABLE, 0.08),
    (TaskStatus.CANCELLED, 0.02),
    (TaskStatus.ACCEPTED, 0.01),
    (TaskStatus.PROCESSING, 0.01),
)


def _example_charts() -> list[dict[str, object]]:
    charts = []
    for model in ("loose_coupling", "tight_coupling", "tight_coupling_twoway"):
        for number in (1, 2, 3):
            series = tuple(
                make_series(name, [(2010 + 5 * k, (k + 1) ** 0.5 * (i + 1)) for k in range(19)])
                for i, name in enumerate(("output1", "output2"))
            )
            charts.append(Chart(model, f"config_{number}", series).to_json())
    return charts


def _largest_charts() -> list[dict[str, object]]:
    rng = random.Random(7)
    charts = [
        Chart(
            f"model_{n}",
            "config_1",
            tuple(
                make_series(f"s{i}", [(x, rng.gauss(0, 1)) for x in range(MAX_POINTS * 2)])
                for i in range(10)
            ),
        )
        for n in range(10)
    ]
    return [chart.to_json() for chart in within_budget(charts)]


def _reusable(rows: int) -> tuple[str, str] | None:
    """The chart tasks' ids when the store already holds what :func:`fill` would make."""
    with store.connection():
        if store.Task.select().count() != rows:
            return None
        ids = [row.task_id for row in store.TaskChart.select(store.TaskChart.task_id).distinct()]
    if len(ids) != 2:
        return None
    with store.connection():
        sizes = {
            i: store.TaskChart.select().where(store.TaskChart.task_id == i).count() for i in ids
        }
    small, large = sorted(ids, key=lambda i: sizes[i])  # the example has 9 charts, the other 10
    return small, large


def fill(settings: Settings, rows: int, reuse: bool = False) -> tuple[str, str]:
    """Insert ``rows`` tasks; return the ids of the example-charts and largest-charts tasks."""
    store.open_database(settings)
    if reuse:
        found = _reusable(rows)
        if found is not None:
            store.close_database()
            return found
    event = json.dumps(example_event())
    rng = random.Random(42)
    statuses = [status for status, _ in MIX]
    weights = [weight for _, weight in MIX]
    now = store.utcnow()
    start = now - timedelta(days=30)
    with store.connection():
        store.Task.delete().execute()
        store.TaskChart.delete().execute()
        batch = []
        for number in range(rows):
            status = rng.choices(statuses, weights)[0]
            created = start + timedelta(seconds=number * 30 * 86400 / rows)
            final = status.final
            batch.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "event_key": f"{number:064x}",
                    "source": "http://metadata.pacifica.org/transactions?_id=1101",
                    "event_id": f"metadata.ingest.{number}",
                    "event_type": "org.pacifica.metadata.ingest",
                    "specversion": "0.1",
                    "event_time": None,
                    "event_json": event.replace('"metadata.ingest.1101"', f'"ev{number}"'),
                    "status": status.value,
                    "route": "proxymod",
                    "error_type": None if status is TaskStatus.OK else "ModelFailed",
                    "error_message": None
                    if status is TaskStatus.OK
                    else f"model loose_coupling: raised KeyError: 'value' (run {number})",
                    "attempts": 1,
                    "created": created,
                    "updated": created,
                    "started": created + timedelta(seconds=1),
                    "finished": created + timedelta(seconds=3) if final else None,
                }
            )
            if len(batch) == 500:
                with store.database_proxy.atomic():
                    store.Task.insert_many(batch).execute()
                batch = []
        if batch:
            with store.database_proxy.atomic():
                store.Task.insert_many(batch).execute()
        ids = [task.id for task in store.Task.select(store.Task.id).limit(2)]
        with store.database_proxy.atomic():
            for task_id, charts in zip(ids, (_example_charts(), _largest_charts()), strict=True):
                rows_ = [
                    {"task_id": task_id, "position": n, "chart_json": json.dumps(chart)}
                    for n, chart in enumerate(charts)
                ]
                store.TaskChart.insert_many(rows_).execute()
    store.close_database()
    return ids[0], ids[1]


def _time(session: requests.Session, url: str) -> float:
    began = time.perf_counter()
    answer = session.get(url, timeout=60)
    elapsed = time.perf_counter() - began
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")
    return elapsed * 1000


def main() -> int:
    """Fill, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--setups", default="sqlite-fs,pg-redis")
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 10 rounds")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--reuse", action="store_true", help="keep a PostgreSQL store filled by an earlier run"
    )
    arguments = parser.parse_args()
    rows = 10_000 if arguments.quick else arguments.rows
    rounds = 10 if arguments.quick else arguments.rounds
    print_machine()
    results = []
    for name in arguments.setups.split(","):
        with scratch(f"bench-ui-{name}-", arguments.keep) as state:
            setup = make_setup(name, state, "ui")
            settings = Settings(database_url=setup.database_url, broker_url=setup.broker_url)
            began = time.monotonic()
            example_id, largest_id = fill(settings, rows, arguments.reuse)
            print(f"# {name}: {rows} tasks stored in {time.monotonic() - began:.0f} s")
            web = start_web(f"web-{name}", dispatcher_env(setup, state), state)
            deep = rows // 2 // 50
            pages = {
                "GET / (JSON, 50)": "/",
                "GET /ui/ (50 runs)": "/ui/",
                "GET /ui/?state=failed": "/ui/?state=failed",
                f"GET /ui/?page={deep}": f"/ui/?page={deep}",
                "GET /ui/task/<id> (9 charts)": f"/ui/task/{example_id}",
                "GET /ui/task/<id> (largest charts)": f"/ui/task/{largest_id}",
            }
            times: dict[str, list[float]] = {label: [] for label in pages}
            with requests.Session() as session:
                for path in pages.values():  # warm up: connections, caches, templates
                    _time(session, web.url + path)
                for _ in range(rounds):
                    for label, path in pages.items():
                        times[label].append(_time(session, web.url + path))
            web.stop()
            for label, values in times.items():
                values.sort()
                p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
                results.append(
                    (name, rows, label, f"{statistics.median(values):.1f}", f"{p95:.1f}")
                )
    print_table(["setup", "tasks", "request", "median ms", "p95 ms"], results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
