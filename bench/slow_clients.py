"""Benchmark ``POST /receive`` with and without 100 idle and 100 slowloris connections open.

Targets, each its own process on the same database and broker, started before the first run
and measured in turn (A B A B ..., ``--rounds`` times; the figures are medians over rounds):

* ``waitress``  the dispatcher as shipped (``python -m pacifica.dispatcher_proxymod``)
* ``cheroot``   the same application under the server it had before (bench/cheroot_dispatcher.py)

Each run is wrk at 8 connections for ``--seconds``; in the ``slow`` condition, 100 connections
that send nothing and 100 that send a header line fragment every 0.5 s are opened first and
kept going for the whole run, and ``GET /health`` is timed once a second beside it. wrk's
timeout is 2 s, so a starved server shows as timeouts rather than a run that never ends. After
each run every task id answered 2xx must be a row of the database and a message on the broker.

    .venv/bin/python bench/slow_clients.py [--quick] [--rounds N] [--seconds S] [--setup NAME]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

from benchkit import (
    SERVERS,
    BenchError,
    HealthProbe,
    Service,
    Setup,
    SlowClients,
    WrkResult,
    broker_task_ids,
    dispatcher_env,
    empty_tasks,
    event_template,
    example_event,
    make_setup,
    median,
    print_machine,
    print_table,
    purge_broker,
    run_wrk,
    scratch,
    start_web,
    task_ids,
)

IDLE = 100
SLOWLORIS = 100
CONNECTIONS = 8
CONDITIONS = ("quiet", "slow")


def verify(setup: Setup, env: dict[str, str], result: WrkResult) -> list[str]:
    """2xx'd task ids that are not rows of the database, or have no message on the broker."""
    answered = set(result.task_ids)
    problems = []
    missing = answered - task_ids(setup)
    if missing:
        problems.append(f"{len(missing)} task(s) answered 2xx are not in the database")
    unsent = answered - set(broker_task_ids(env, answered, 15.0))
    if unsent:
        problems.append(f"{len(unsent)} task(s) answered 2xx have no message on the broker")
    return problems


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
            services = [start_web(name, env, work, server=name) for name in SERVERS]
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
                            f"{service.name} {condition}: {p}" for p in verify(setup, env, result)
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
    print("\nEvery task answered 2xx was a row of its database and a message on its broker.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
