"""Benchmark ``POST /receive`` with and without 100 idle and 100 slowloris connections open.

Targets, each its own process on the same database and broker, started before the first run
and measured in turn (A B A B ..., ``--rounds`` times; the figures are medians over rounds):

* ``waitress``  the dispatcher as shipped (``python -m pacifica.dispatcher_proxymod``)
* ``cheroot``   the same application under the server it had before (bench/cheroot_dispatcher.py)

Each run is wrk at 8 connections for ``--seconds``; in the ``slow`` condition, 100 connections
that send nothing and 100 that send a header line fragment every 0.5 s are opened first and
kept going for the whole run, and ``GET /health`` is timed once a second beside it. wrk's
timeout is 2 s, so a starved server shows as timeouts rather than a run that never ends. After
each run every task id answered 2xx must be a row of the database.

    .venv/bin/python bench/slow_clients.py [--quick] [--rounds N] [--seconds S] [--setup NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests
from common import (
    BENCH,
    PYTHON,
    BenchError,
    Service,
    Setup,
    WrkResult,
    dispatcher_env,
    empty_tasks,
    event_template,
    example_event,
    free_port,
    make_setup,
    median,
    print_machine,
    print_table,
    purge_broker,
    run_wrk,
    scratch,
    start,
    start_web,
    task_ids,
    wait_http,
)

IDLE = 100
SLOWLORIS = 100
CONNECTIONS = 8
CONDITIONS = ("quiet", "slow")


class SlowClients:
    """Idle connections and slowloris ones (an unfinished header, a byte every 0.5 s)."""

    def __init__(self, port: int) -> None:
        self.sockets: list[socket.socket] = []
        self.slow: list[socket.socket] = []
        for number in range(IDLE + SLOWLORIS):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.sockets.append(connection)
            if number >= IDLE:
                connection.sendall(b"POST /receive HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                self.slow.append(connection)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        while not self._stop.wait(0.5):
            for connection in self.slow:
                with contextlib.suppress(OSError):
                    connection.send(b"a")

    def close(self) -> None:
        """Stop dripping and close every connection."""
        self._stop.set()
        self._thread.join()
        for connection in self.sockets:
            connection.close()


class HealthProbe:
    """``GET /health`` once a second: how long each took (None: no answer within 5 s)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seconds: list[float | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            started = time.monotonic()
            try:
                requests.get(self.url + "/health", timeout=5).raise_for_status()
                self.seconds.append(time.monotonic() - started)
            except requests.RequestException:
                self.seconds.append(None)

    def stop(self) -> list[float | None]:
        """End the probe; the timings."""
        self._stop.set()
        self._thread.join()
        return self.seconds


def start_cheroot(env: dict[str, str], log_dir: Path) -> Service:
    """The dispatcher under cheroot (bench/cheroot_dispatcher.py) on a free port."""
    port = free_port()
    command = [PYTHON, str(BENCH / "cheroot_dispatcher.py"), "--port", str(port)]
    service = start("cheroot", command, env, log_dir)
    service.url = f"http://127.0.0.1:{port}"
    wait_http(service, "/health")
    return service


def verify(setup: Setup, result: WrkResult) -> list[str]:
    """2xx'd task ids that are not rows of the database."""
    missing = set(result.task_ids) - task_ids(setup)
    return [f"{len(missing)} task(s) answered 2xx are not in the database"] if missing else []


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--setup", default="pg-redis", help="sqlite-fs, pg-redis or pg-rabbitmq")
    parser.add_argument("--keep", action="store_true", help="keep logs and state")
    args = parser.parse_args()
    rounds, seconds = (2, 3.0) if args.quick else (args.rounds, args.seconds)
    print_machine()
    template = event_template(example_event())
    print(
        f"# POST /receive, {CONNECTIONS} wrk connections, {args.setup}, {rounds} rounds x "
        f"{seconds:g} s; slow = {IDLE} idle + {SLOWLORIS} slowloris connections open"
    )
    results: dict[tuple[str, str], list[WrkResult]] = defaultdict(list)
    health: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    problems: list[str] = []
    with scratch("bench-slow-", keep=args.keep) as work:
        services: list[Service] = []
        try:
            state = work / "state"
            state.mkdir()
            setup = make_setup(args.setup, state, "slow")
            empty_tasks(setup)
            purge_broker(setup, state)
            env = dispatcher_env(setup, state)
            services = [start_web("waitress", env, work), start_cheroot(dict(env), work)]
            for service in services:  # warm up
                run_wrk(service.url, template, 16, 1, work, collect_ids=False)
            for round_number in range(1, rounds + 1):
                for service in services:
                    for condition in CONDITIONS:
                        empty_tasks(setup)
                        purge_broker(setup, state)
                        port = int(service.url.rsplit(":", 1)[1])
                        slow = SlowClients(port) if condition == "slow" else None
                        probe = HealthProbe(service.url)
                        try:
                            time.sleep(0.5)
                            result = run_wrk(
                                service.url, template, CONNECTIONS, seconds, work, timeout_s=2
                            )
                        finally:
                            timings = probe.stop()
                            if slow is not None:
                                slow.close()
                        problems += [
                            f"{service.name} {condition}: {p}" for p in verify(setup, result)
                        ]
                        results[(service.name, condition)].append(result)
                        health[(service.name, condition)].extend(timings)
                        answered = [t for t in timings if t is not None]
                        print(
                            f"  round {round_number} {service.name:<8} {condition:<5} "
                            f"{result.rps:7.0f} req/s  p99 {result.p99_ms:7.1f} ms  "
                            f"errors {result.errors}  /health answered "
                            f"{len(answered)}/{len(timings)}, slowest "
                            f"{max(answered, default=float('nan')):.2f} s",
                            flush=True,
                        )
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            for service in services:
                service.stop()
    rows = []
    for name in ("waitress", "cheroot"):
        for condition in CONDITIONS:
            runs = results[(name, condition)]
            timings = health[(name, condition)]
            answered = [t for t in timings if t is not None]
            rows.append(
                [
                    name,
                    condition,
                    f"{median([r.rps for r in runs]):.0f}",
                    f"{median([r.p99_ms for r in runs]):.1f}",
                    sum(r.errors for r in runs),
                    sum(r.ok for r in runs),
                    f"{len(answered)}/{len(timings)}",
                    f"{median(answered):.3f}" if answered else "-",
                    f"{max(answered):.3f}" if answered else "-",
                ]
            )
    print()
    print_table(
        [
            "server",
            "load",
            "req/s (median)",
            "p99 ms (median)",
            "errors (all rounds)",
            "2xx (all rounds)",
            "/health answered",
            "/health median s",
            "/health max s",
        ],
        rows,
    )
    if problems:
        print("\nDURABILITY PROBLEMS:\n  " + "\n  ".join(problems))
        return 1
    print("\nEvery task answered 2xx was a row of its database after its run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
