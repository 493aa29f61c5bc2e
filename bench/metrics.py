"""How long a ``GET /metrics`` scrape takes with 10^6 task rows on PostgreSQL, A/B.

A: the service's ``/metrics`` over real HTTP (the WSGI app under cheroot, as the tests serve
it): it reads the two summary tables of ``store/tallies.py``.
B: what a naive implementation would run per scrape: ``COUNT(*) ... GROUP BY status`` and the
task-duration histogram as ``CASE`` buckets, over the whole task table.

Also C: what the triggers that keep the counts cost a write, measured as 5,000 single-row
``INSERT``s (each autocommitted, as ``POST /receive`` does) with and without them.

    .venv/bin/python bench/metrics.py [--rows 1000000] [--scrapes 50] [--database URL]

The database is emptied first (use a private one). Medians; figures in bench/README.md.
"""

# ruff: noqa: S608  (constant SQL built from our own table names and buckets)
from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from httpserver import serving  # noqa: E402

from pacifica.dispatcher_proxymod import store  # noqa: E402
from pacifica.dispatcher_proxymod.settings import Settings  # noqa: E402
from pacifica.dispatcher_proxymod.states import TaskStatus  # noqa: E402
from pacifica.dispatcher_proxymod.store import tallies  # noqa: E402
from pacifica.dispatcher_proxymod.web import create_app  # noqa: E402

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/dispatcher_observe"
#: The mix of a long-running deployment: mostly ended, a few live.
MIX = [
    (TaskStatus.OK, 0.80),
    (TaskStatus.FAILED, 0.10),
    (TaskStatus.UNPROCESSABLE, 0.07),
    (TaskStatus.CANCELLED, 0.01),
    (TaskStatus.ACCEPTED, 0.015),
    (TaskStatus.PROCESSING, 0.005),
]
COLUMNS = (
    "id, event_key, source, event_id, event_type, specversion, event_json, status, "
    "models_json, attempts, created, updated, started, finished"
)
NAIVE = [
    "SELECT status, COUNT(*) FROM dispatcher_task GROUP BY status",
    "SELECT status, CASE "
    + " ".join(
        f"WHEN EXTRACT(EPOCH FROM finished - started) <= {b} THEN '{b}'"
        for b in tallies.BUCKETS[tallies.TASK_DURATION][:-1]
    )
    + " ELSE '+Inf' END AS le, COUNT(*), SUM(EXTRACT(EPOCH FROM finished - started)) "
    "FROM dispatcher_task WHERE finished IS NOT NULL AND started IS NOT NULL GROUP BY 1, 2",
]


def _rows(count: int) -> io.StringIO:
    """``count`` task rows in COPY text format."""
    rng = random.Random(7)
    statuses = [status.value for status, _ in MIX]
    weights = [weight for _, weight in MIX]
    start = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    models = json.dumps([{"model": "m", "outcome": "ok", "duration_seconds": 1.5}])
    out = io.StringIO()
    for n, status in enumerate(rng.choices(statuses, weights, k=count)):
        created = start + timedelta(seconds=n * 2)
        ended = TaskStatus(status).final
        began = created + timedelta(seconds=rng.uniform(0.1, 20)) if ended else None
        finished = began + timedelta(seconds=rng.uniform(1, 600)) if began else None
        fields = [
            str(uuid.UUID(int=rng.getrandbits(128))),
            f"{n:064x}",
            "http://metadata.pacifica.org/transactions?_id=",
            f"bench-{n}",
            "org.pacifica.metadata.ingest",
            "0.1",
            "{}",
            status,
            models,
            "1",
            created.isoformat(),
            (finished or created).isoformat(),
            began.isoformat() if began else "\\N",
            finished.isoformat() if finished else "\\N",
        ]
        out.write("\t".join(fields) + "\n")
    out.seek(0)
    return out


def load(url: str, count: int) -> None:
    """Empty the store and COPY ``count`` rows in, the trigger off, then count once."""
    connection = psycopg2.connect(url)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE dispatcher_task, dispatcher_attempt, dispatcher_task_chart, "
            "dispatcher_task_log"
        )
        cursor.execute("ALTER TABLE dispatcher_task DISABLE TRIGGER USER")
        started = time.perf_counter()
        cursor.copy_expert(f"COPY dispatcher_task ({COLUMNS}) FROM STDIN", _rows(count))
        print(f"loaded {count} rows in {time.perf_counter() - started:.1f} s")
        cursor.execute("ALTER TABLE dispatcher_task ENABLE TRIGGER USER")
        # some figures in every bucket (their values do not change what a scrape reads)
        cursor.execute("UPDATE dispatcher_tally SET count = 1000, total = 1234.5")
    _recount()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE dispatcher_task")
        cursor.execute("SELECT SUM(tasks) FROM dispatcher_state_shard")
        print(f"state counts sum to {cursor.fetchone()[0]}")
    connection.close()


def _recount() -> None:
    """The shard counts again, after changes made with the triggers off."""
    with store.connection(), store.database_proxy.atomic():
        tallies.recount(store.database_proxy)


def _median_ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms"


def scrape(settings: Settings, scrapes: int) -> list[float]:
    """Time ``scrapes`` GETs of /metrics over HTTP (after one warm-up)."""
    times = []
    with serving(create_app(settings)) as url, requests.Session() as s:
        s.get(f"{url}/metrics", timeout=60).raise_for_status()
        for _ in range(scrapes):
            started = time.perf_counter()
            answer = s.get(f"{url}/metrics", timeout=60)
            times.append(time.perf_counter() - started)
            answer.raise_for_status()
        waiting = [line for line in answer.text.splitlines() if 'tasks{state="waiting"}' in line]
        print(f"  {waiting[0]}  ({len(answer.content)} bytes)")
    return times


def read_only(repeats: int) -> list[float]:
    """Time the summary read a scrape makes, without HTTP and text formatting."""
    times = []
    with store.connection():
        for _ in range(repeats):
            started = time.perf_counter()
            tallies.read()
            times.append(time.perf_counter() - started)
    return times


def naive(url: str, repeats: int) -> list[float]:
    """Time the full-scan queries a naive scrape would run."""
    connection = psycopg2.connect(url)
    times = []
    with connection.cursor() as cursor:
        for _ in range(repeats):
            started = time.perf_counter()
            for query in NAIVE:
                cursor.execute(query)
                cursor.fetchall()
            times.append(time.perf_counter() - started)
    connection.close()
    return times


def insert_cost(url: str, inserts: int) -> dict[str, list[float]]:
    """Per-INSERT time (autocommit) with the counting trigger on and off, alternating."""
    connection = psycopg2.connect(url)
    connection.autocommit = True
    results: dict[str, list[float]] = {"trigger on": [], "trigger off": []}
    rng = random.Random(11)
    with connection.cursor() as cursor:
        for round_ in range(10):
            for label, toggle in (("trigger on", "ENABLE"), ("trigger off", "DISABLE")):
                cursor.execute(f"ALTER TABLE dispatcher_task {toggle} TRIGGER USER")
                started = time.perf_counter()
                for _ in range(inserts // 10):
                    cursor.execute(
                        f"INSERT INTO dispatcher_task ({COLUMNS}) VALUES "
                        "(%s, %s, 's', %s, 't', '1.0', '{}', %s, '[]', 0, now(), now(), NULL, "
                        "NULL)",
                        (
                            str(uuid.uuid4()),
                            uuid.uuid4().hex * 2,
                            f"i{round_}-{rng.random()}",
                            TaskStatus.ACCEPTED.value,
                        ),
                    )
                results[label].append((time.perf_counter() - started) / (inserts // 10))
        cursor.execute("ALTER TABLE dispatcher_task ENABLE TRIGGER USER")
    connection.close()
    _recount()
    return results


def _insert_many(url: str, count: int, tag: str) -> None:
    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        for n in range(count):
            cursor.execute(
                f"INSERT INTO dispatcher_task ({COLUMNS}) VALUES "
                "(%s, %s, 's', %s, 't', '1.0', '{}', %s, '[]', 0, now(), now(), NULL, NULL)",
                (str(uuid.uuid4()), uuid.uuid4().hex * 2, f"{tag}-{n}", TaskStatus.ACCEPTED.value),
            )
    connection.close()


def insert_throughput(url: str, threads: int, each: int) -> dict[str, list[float]]:
    """Inserts per second from ``threads`` concurrent connections (as many web threads
    recording events at once), the trigger on and off, alternating, 3 rounds."""
    control = psycopg2.connect(url)
    control.autocommit = True
    results: dict[str, list[float]] = {"trigger on": [], "trigger off": []}
    with control.cursor() as cursor:
        for round_ in range(3):
            for label, toggle in (("trigger on", "ENABLE"), ("trigger off", "DISABLE")):
                cursor.execute(f"ALTER TABLE dispatcher_task {toggle} TRIGGER USER")
                workers = [
                    threading.Thread(target=_insert_many, args=(url, each, f"{label}{round_}{t}"))
                    for t in range(threads)
                ]
                started = time.perf_counter()
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                results[label].append(threads * each / (time.perf_counter() - started))
        cursor.execute("ALTER TABLE dispatcher_task ENABLE TRIGGER USER")
    control.close()
    _recount()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--inserts", type=int, default=5000)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args()
    settings = Settings(database_url=args.database, state_dir=Path("/tmp/bench-metrics-state"))
    store.open_database(settings)  # tables, summary and triggers
    if args.rows:
        load(args.database, args.rows)
    with store.connection():
        tasks = sum(tallies.read().states.values())
    scraped = _median_ms(scrape(settings, args.scrapes))
    print(f"A  GET /metrics over HTTP, {tasks} tasks: {scraped}")
    print(
        f"A' the store read of a scrape alone (tallies.read): {_median_ms(read_only(args.scrapes))}"
    )
    print(f"B  naive full-scan queries, {tasks} tasks: {_median_ms(naive(args.database, 11))}")
    cost = insert_cost(args.database, args.inserts)
    for label, samples in cost.items():
        median = statistics.median(samples) * 1e6
        print(f"C  one autocommitted INSERT, {label}: median {median:.0f} us")
    rates = insert_throughput(args.database, 8, args.inserts // 20)
    for label, samples in rates.items():
        rate = statistics.median(samples)
        print(f"D  INSERTs/s from 8 connections at once, {label}: median {rate:.0f}")
    import cherrypy

    cherrypy.engine.exit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
