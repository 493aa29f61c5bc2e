"""Benchmark end to end: example events (runtime 0) through 1 and 2 worker processes.

One dispatcher web process and a real Celery worker (``worker --concurrency N``), local transfer
from examples/data, every model sandboxed as configured (bwrap here). Phases, alternating
1 2 1 2 workers, each posting ``--events / 2`` events with fresh ids and waiting until every task
is final; then a closed-loop phase (one event at a time, 1 worker) for the latency of one event
on an idle service; then the sandbox's own start cost (bwrap vs process isolation, alternating).

Figures, from the task rows (one clock, the store's) and their ``models[]``:

* events/s: events / (last ``finished`` - first ``created``)
* service overhead: (``finished`` - ``started``) - the sum of the models' (ended - started):
  what a worker spends per event besides running models (claim, download, INIs, manifest,
  delivery, recording)
* time to 200 OK (closed loop): ``finished`` - ``created``; its overhead subtracts the models

    .venv/bin/python bench/e2e.py [--quick] [--events 200] [--setup pg-redis] [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from benchkit import (
    EXAMPLE_DATA,
    SETUPS,
    BenchError,
    Service,
    Setup,
    dispatcher_env,
    empty_tasks,
    example_event,
    make_setup,
    median,
    print_machine,
    print_table,
    purge_broker,
    ratio,
    scratch,
    start_py_spy,
    start_web,
    start_worker,
    summarize_profile,
    task_rows,
)

from pacifica.dispatcher_proxymod.sandbox import run_model
from pacifica.dispatcher_proxymod.settings import Settings

COLUMNS = ("id", "status", "created", "started", "finished", "models_json")
FINAL = ("200", "422", "500")
#: Frames left out of the printed profile (the way in, and library internals).
PROFILE_NOISE = (
    "process ",
    "__main__",
    "runpy",
    "cli.py",
    "celery/",
    "billiard/",
    "click/",
    "antlr4/",
    "JSONPathParser",
)
TRIVIAL_MODEL = "def trivial(*configs):\n    return None\n"


def _time(value: Any) -> datetime:
    """A store timestamp (datetime from PostgreSQL, text from SQLite) as naive UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.fromisoformat(str(value)).replace(tzinfo=None)


def _model_seconds(models_json: str) -> float:
    """The summed (ended - started) of a task's model runs."""
    runs = json.loads(models_json or "[]")
    return sum(
        (
            datetime.fromisoformat(run["ended"]) - datetime.fromisoformat(run["started"])
        ).total_seconds()
        for run in runs
    )


def post_events(url: str, count: int, tag: str) -> None:
    """POST ``count`` copies of the example event, each with a fresh id; all must be 202."""
    document = example_event()
    with requests.Session() as session:
        for number in range(count):
            document["eventID"] = f"{tag}-{number}"
            answer = session.post(f"{url}/receive", json=document, timeout=60)
            if answer.status_code != 202:
                raise BenchError(f"POST /receive answered {answer.status_code}: {answer.text}")


def wait_final(setup: Setup, count: int, timeout: float, worker: Service) -> list[dict[str, Any]]:
    """Poll the task rows until ``count`` of them are final; return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = task_rows(setup, COLUMNS)
        if len(rows) >= count and all(str(row["status"])[:3] in FINAL for row in rows):
            return rows
        if worker.process.poll() is not None:
            raise BenchError(f"the worker died:\n{worker.log_tail()}")
        time.sleep(0.05 if count == 1 else 0.5)
    raise BenchError(f"{count} task(s) not final within {timeout:g} s:\n{worker.log_tail()}")


def phase_figures(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Throughput and per-event figures of one phase (milliseconds unless said)."""
    created = [_time(row["created"]) for row in rows]
    finished = [_time(row["finished"]) for row in rows]
    span = (max(finished) - min(created)).total_seconds()
    service, overhead, models, to_ok, ok_overhead = [], [], [], [], []
    for row, start, end in zip(rows, created, finished, strict=True):
        model_s = _model_seconds(row["models_json"])
        busy = (end - _time(row["started"])).total_seconds()
        models.append(1000 * model_s)
        service.append(1000 * busy)
        overhead.append(1000 * (busy - model_s))
        to_ok.append(1000 * (end - start).total_seconds())
        ok_overhead.append(1000 * ((end - start).total_seconds() - model_s))
    return {
        "events": len(rows),
        "ok": sum(1 for row in rows if str(row["status"]).startswith("200")),
        "events_per_s": len(rows) / span if span else float("nan"),
        "models_ms": median(models),
        "service_ms": median(service),
        "overhead_ms": median(overhead),
        "overhead_p90_ms": sorted(overhead)[int(0.9 * (len(overhead) - 1))],
        "to_ok_ms": median(to_ok),
        "to_ok_overhead_ms": median(ok_overhead),
    }


def sandbox_cost(rounds: int, work: Path) -> dict[str, list[float]]:
    """Wall milliseconds of one trivial model run, bwrap vs process isolation, alternating."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-", dir=work))
    model = folder / "trivial.py"
    model.write_text(TRIVIAL_MODEL)
    timings: dict[str, list[float]] = {"bwrap": [], "process": []}
    for _ in range(rounds):
        for isolation in timings:
            settings = Settings(sandbox=isolation, state_dir=work, work_dir=work)
            started = time.perf_counter()
            run = run_model(model, [], folder, folder / "out.log", folder / "err.log", settings)
            elapsed = 1000 * (time.perf_counter() - started)
            if not run.ok or run.isolation != isolation:
                raise BenchError(f"trivial model under {isolation}: {run.to_json()}")
            timings[isolation].append(elapsed)
    return timings


def main() -> int:
    """Run the phases and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 events, 3 closed-loop events")
    parser.add_argument("--events", type=int, default=200, help="events per worker count")
    parser.add_argument("--closed-loop", type=int, default=10, help="events sent one at a time")
    parser.add_argument("--setup", default="pg-redis", choices=SETUPS)
    parser.add_argument("--keep", action="store_true", help="keep logs and state")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy (wall time, idle included) on the worker during the first 1-worker phase",
    )
    args = parser.parse_args()
    events, closed = (40, 3) if args.quick else (args.events, args.closed_loop)
    per_phase = events // 2
    print_machine()
    print(f"# {events} events per worker count in 2 phases of {per_phase}, setup {args.setup}")
    phases: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with scratch("bench-e2e-", keep=args.keep) as work:
        profile = work / "profile-worker.txt"
        state = work / "state"
        state.mkdir()
        setup = make_setup(args.setup, state, "e2e")
        env = dispatcher_env(
            setup,
            state,
            DISPATCHER_TRANSFER="local",
            DISPATCHER_DATA_DIR=str(EXAMPLE_DATA),
            DISPATCHER_OUTPUT_DIR=str(work / "results"),
            DISPATCHER_KEEP_WORK="on-failure",
        )
        empty_tasks(setup)
        purge_broker(setup, state)
        web = start_web("web", env, work)
        try:
            for half in range(2):
                for workers in (1, 2):
                    empty_tasks(setup)
                    purge_broker(setup, state)
                    worker = start_worker(f"worker{workers}", env, work, workers)
                    spy = None
                    if args.profile and half == 0 and workers == 1:
                        spy = start_py_spy(worker.pid, per_phase * 0.4, profile, wall=True)
                    try:
                        post_events(web.url, per_phase, f"e2e-{uuid.uuid4().hex[:8]}")
                        rows = wait_final(setup, per_phase, 60 + 5.0 * per_phase, worker)
                    finally:
                        if spy is not None:
                            spy.wait()
                        worker.stop()
                    figures = phase_figures(rows)
                    phases[workers].append(figures)
                    print(
                        f"  phase {half + 1} {workers} worker(s): "
                        f"{figures['events_per_s']:.2f} events/s, {figures['ok']}/{per_phase} "
                        f"200 OK, service overhead {figures['overhead_ms']:.0f} ms, "
                        f"models {figures['models_ms']:.0f} ms",
                        flush=True,
                    )
            empty_tasks(setup)
            worker = start_worker("worker-closed", env, work, 1)
            closed_rows: list[dict[str, Any]] = []
            try:
                for number in range(closed):
                    post_events(web.url, 1, f"closed-{uuid.uuid4().hex[:8]}-{number}")
                    rows = wait_final(setup, number + 1, 120, worker)
                    closed_rows = rows
            finally:
                worker.stop()
            closed_figures = phase_figures(closed_rows)
            sandbox = sandbox_cost(3 if args.quick else 10, work)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            web.stop()
        if args.profile and profile.exists():
            print(
                "\n# worker profile (wall time, 1 worker, first phase): share of the time in "
                "execute() spent outside run_model() (the sandboxed models), by function"
            )
            shares = summarize_profile(
                profile,
                top=80,
                within="execute (dispatcher_proxymod/execution.py",
                leave_out="run_model (dispatcher_proxymod/sandbox.py",
            )
            for frame, share in shares:
                if share >= 0.5 and not any(skip in frame for skip in PROFILE_NOISE):
                    print(f"  {share:5.1f}%  {frame}")
    print()
    rows_out = []
    one = median([p["events_per_s"] for p in phases[1]])
    for workers in (1, 2):
        runs = phases[workers]
        rate = median([p["events_per_s"] for p in runs])
        rows_out.append(
            [
                workers,
                f"{rate:.2f}",
                f"{ratio(rate, one):.2f}",
                " ".join(f"{p['events_per_s']:.2f}" for p in runs),
                f"{sum(p['ok'] for p in runs):.0f}/{sum(p['events'] for p in runs):.0f}",
                f"{median([p['models_ms'] for p in runs]):.0f}",
                f"{median([p['overhead_ms'] for p in runs]):.0f}",
                f"{median([p['overhead_p90_ms'] for p in runs]):.0f}",
            ]
        )
    print_table(
        [
            "workers",
            "events/s (median)",
            "ratio to 1 worker",
            "per phase",
            "200 OK",
            "models ms/event (3 sandboxed runs)",
            "service overhead ms (median)",
            "overhead p90 ms",
        ],
        rows_out,
    )
    print()
    print_table(
        [
            "closed loop (1 worker, one event at a time)",
            "time to 200 OK ms",
            "models ms",
            "overhead ms (median)",
            "service overhead ms",
        ],
        [
            [
                f"{closed_figures['events']:.0f} events, {closed_figures['ok']:.0f} OK",
                f"{closed_figures['to_ok_ms']:.0f}",
                f"{closed_figures['models_ms']:.0f}",
                f"{closed_figures['to_ok_overhead_ms']:.0f}",
                f"{closed_figures['overhead_ms']:.0f}",
            ]
        ],
    )
    print()
    bwrap, process = median(sandbox["bwrap"]), median(sandbox["process"])
    print_table(
        ["one trivial model run", "ms (median)", "ratio to process isolation", "runs"],
        [
            ["bwrap", f"{bwrap:.0f}", f"{ratio(bwrap, process):.2f}", len(sandbox["bwrap"])],
            ["process", f"{process:.0f}", "1.00", len(sandbox["process"])],
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
