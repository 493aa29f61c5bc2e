"""Where the CPU of one ``POST /receive`` goes: each step of ``Receiver.receive``, in this process.

CPU time (``time.process_time``) per call, so the figures hold on a noisy machine. The steps
run in alternation (A B C ... A B C ...) for ``--rounds`` rounds; the table shows medians and
each step's share of their sum. ``routing checks only`` is the Python pre-check that
``routing.match`` runs before jsonpath2 (``routing._reasons``): what routing would cost if the
web process relied on it alone.

    .venv/bin/python bench/receive_cost.py [--quick] [--setup pg-redis]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from benchkit import (
    EXAMPLE_EVENT,
    SETUPS,
    make_setup,
    median,
    print_machine,
    print_table,
    scratch,
)

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import Event, parse_http
from pacifica.dispatcher_proxymod.proxymod import routing
from pacifica.dispatcher_proxymod.queue import create_celery_app, publish
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus

HEADERS = {"Content-Type": "application/json"}


def cpu_ms_per_call(step: Callable[[], object], calls: int) -> float:
    """CPU milliseconds per call of ``step`` over ``calls`` calls."""
    started = time.process_time()
    for _ in range(calls):
        step()
    return 1000 * (time.process_time() - started) / calls


def main() -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="calls of a step per round")
    parser.add_argument("--setup", default="pg-redis", choices=SETUPS)
    args = parser.parse_args()
    rounds, calls = (2, 30) if args.quick else (args.rounds, args.calls)
    print_machine()
    document = json.loads(EXAMPLE_EVENT.read_text())
    body = EXAMPLE_EVENT.read_bytes()
    with scratch("bench-receive-cost-") as work:
        setup = make_setup(args.setup, work, "receive")
        settings = Settings(
            database_url=setup.database_url, broker_url=setup.broker_url, state_dir=work
        )
        store.open_database(settings)
        app = create_celery_app(settings)
        event = parse_http(HEADERS, body)
        recorded: list[str] = []

        def fresh_event() -> Event:
            document["eventID"] = uuid.uuid4().hex
            return parse_http(HEADERS, json.dumps(document).encode())

        def record() -> None:
            task = store.record_event(fresh_event(), TaskStatus.ACCEPTED, route="proxymod")
            recorded.append(task.task.id)

        def parse_only() -> None:
            fresh_event()

        steps: dict[str, Callable[[], object]] = {
            "parse_http (fresh id)": parse_only,
            "routing.match (jsonpath2)": lambda: routing.match(event, settings),
            "routing checks only": lambda: next(
                routing._reasons(event, settings.accepted_sources), None
            ),
            "store.record_event (+ parse)": record,
            "queue.publish (send + mark_queued)": lambda: publish(app, recorded[-1]),
            "store.mark_queued alone": lambda: store.mark_queued(recorded[-1]),
        }
        record()
        for step in steps.values():  # warm up: caches, connections
            step()
        figures: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                figures[name].append(cpu_ms_per_call(step, calls))
        store.close_database()
        _purge(setup.broker_url, work)
    medians = {name: median(values) for name, values in figures.items()}
    request_total = sum(
        medians[name]
        for name in (
            "routing.match (jsonpath2)",
            "store.record_event (+ parse)",
            "queue.publish (send + mark_queued)",
        )
    )
    print(f"# setup {args.setup}, {rounds} rounds x {calls} calls, CPU ms per call")
    print_table(
        ["step", "CPU ms (median)", "share of parse+match+record+publish", "per round"],
        [
            [
                name,
                f"{value:.3f}",
                f"{100 * value / request_total:.0f}%",
                " ".join(f"{v:.2f}" for v in figures[name]),
            ]
            for name, value in medians.items()
        ],
    )
    return 0


def _purge(broker_url: str, work: Path) -> None:
    from benchkit import Setup, purge_broker

    purge_broker(Setup("cost", "", broker_url), work)


if __name__ == "__main__":
    sys.exit(main())
