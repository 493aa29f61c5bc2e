"""Benchmark ``POST /receive``: req/s, p50, p99 and errors with wrk, beside a bare-server ceiling.

Targets, each its own process, all started before the first run and measured in turn
(ceiling, then each setup, for each connection count; repeated ``--rounds`` times, so the runs
alternate A B C D A B C D and the figures are medians over the rounds):

* ``ceiling``     bench/ceiling.py: the same cheroot server and thread count, body read, 202
* ``cherrypy-floor`` bench/cherrypy_floor.py: CherryPy configured as the dispatcher, no work
* ``pg-redis``    the dispatcher web process on PostgreSQL (dispatcher_bench) + Redis db 5
* ``pg-rabbitmq`` on PostgreSQL + RabbitMQ (vhost dispatcher_bench)
* ``sqlite-fs``   the embedded default: SQLite + the filesystem broker

Every request carries a fresh event id (bench/receive.lua). Before each run the task table is
emptied and the queue purged (no worker runs); after it, every task id answered with a 2xx must
be a row of the database, or the run counts as failed.

    .venv/bin/python bench/receive.py [--quick] [--rounds N] [--seconds S] [--keep]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from common import (
    BenchError,
    Service,
    Setup,
    WrkResult,
    dispatcher_env,
    empty_tasks,
    event_template,
    example_event,
    make_setup,
    median,
    print_machine,
    print_table,
    purge_broker,
    ratio,
    run_wrk,
    scratch,
    start_ceiling,
    start_cherrypy_floor,
    start_py_spy,
    start_web,
    summarize_profile,
    task_ids,
)

CONNECTIONS = (8, 64)
CEILING = "ceiling"
FLOOR = "cherrypy-floor"
#: Frames worth showing from a profile (the rest is CherryPy's and cheroot's plumbing).
INTERESTING = ("dispatcher_proxymod", "jsonpath2", "peewee", "celery", "kombu", "respond", "run (")


@dataclass
class Target:
    """One server under load: the ceiling (no setup) or the dispatcher on a setup."""

    name: str
    service: Service
    setup: Setup | None
    state_dir: Path | None


def verify(target: Target, result: WrkResult) -> list[str]:
    """Problems with durability: 2xx'd tasks missing from the database, rows vs answers."""
    if target.setup is None:
        return []
    rows = task_ids(target.setup)
    answered = set(result.task_ids)
    problems = []
    missing = answered - rows
    if missing:
        problems.append(f"{len(missing)} task(s) answered 2xx are not in the database")
    if len(answered) != result.ok:
        problems.append(f"{result.ok} 2xx answers but {len(answered)} distinct task ids")
    if len(rows) < result.ok:
        problems.append(f"{len(rows)} rows for {result.ok} 2xx answers")
    return problems


def main() -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of one wrk run")
    parser.add_argument(
        "--setups", default="pg-redis,pg-rabbitmq,sqlite-fs", help="comma-separated setups"
    )
    parser.add_argument("--keep", action="store_true", help="keep logs and state")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy (GIL holders) on each dispatcher during its last 8-connection run",
    )
    args = parser.parse_args()
    rounds, seconds = (2, 3.0) if args.quick else (args.rounds, args.seconds)
    print_machine()
    template = event_template(example_event())
    body_bytes = len(template.encode())
    print(f"# POST /receive, example event ({body_bytes} bytes), {rounds} rounds x {seconds:g} s")
    results: dict[tuple[str, int], list[WrkResult]] = defaultdict(list)
    problems: list[str] = []
    profiles: dict[str, Path] = {}
    with scratch("bench-receive-", keep=args.keep) as work:
        targets: list[Target] = []
        try:
            targets.append(Target(CEILING, start_ceiling(work), None, None))
            targets.append(Target(FLOOR, start_cherrypy_floor(work), None, None))
            for name in args.setups.split(","):
                state = work / name
                state.mkdir()
                setup = make_setup(name, state, "receive")
                empty_tasks(setup)
                purge_broker(setup, state)
                service = start_web(name, dispatcher_env(setup, state), work)
                targets.append(Target(name, service, setup, state))
            for target in targets:  # warm up: imports, caches, connections of every thread
                run_wrk(target.service.url, template, 16, 1, work, collect_ids=False)
            for round_number in range(1, rounds + 1):
                for target in targets:
                    for connections in CONNECTIONS:
                        if target.setup is not None and target.state_dir is not None:
                            empty_tasks(target.setup)
                            purge_broker(target.setup, target.state_dir)
                        spy = None
                        if (
                            args.profile
                            and round_number == rounds
                            and connections == CONNECTIONS[0]
                            and target.setup is not None
                        ):
                            profile = work / f"profile-{target.name}.txt"
                            profiles[target.name] = profile
                            spy = start_py_spy(target.service.pid, seconds - 1, profile)
                        result = run_wrk(
                            target.service.url,
                            template,
                            connections,
                            seconds,
                            work,
                            collect_ids=target.setup is not None,
                        )
                        if spy is not None:
                            spy.wait()
                        found = verify(target, result)
                        problems += [f"{target.name} c{connections}: {p}" for p in found]
                        results[(target.name, connections)].append(result)
                        print(
                            f"  round {round_number} {target.name:<12} c{connections:<3} "
                            f"{result.rps:8.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
                            f"p99 {result.p99_ms:6.1f} ms  errors {result.errors}  "
                            f"statuses {result.statuses}"
                            + ("  rows ok" if target.setup is not None and not found else ""),
                            flush=True,
                        )
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            for target in targets:
                target.service.stop()
        for name, profile in profiles.items():
            print(f"\n# profile of {name} at 8 connections: inclusive share of CPU samples")
            for frame, share in summarize_profile(profile, top=40):
                if any(word in frame for word in INTERESTING):
                    print(f"  {share:5.1f}%  {frame}")
    rows = []
    for connections in CONNECTIONS:
        ceiling_rps = median([r.rps for r in results[(CEILING, connections)]])
        for name in [CEILING, FLOOR, *args.setups.split(",")]:
            runs = results[(name, connections)]
            rps = median([r.rps for r in runs])
            per_round = [
                ratio(r.rps, c.rps)
                for r, c in zip(runs, results[(CEILING, connections)], strict=True)
            ]
            rows.append(
                [
                    name,
                    connections,
                    f"{rps:.0f}",
                    f"{median([r.p50_ms for r in runs]):.1f}",
                    f"{median([r.p99_ms for r in runs]):.1f}",
                    sum(r.errors for r in runs),
                    sum(r.ok for r in runs),
                    f"{ratio(rps, ceiling_rps):.2f}",
                    " ".join(f"{value:.2f}" for value in per_round),
                ]
            )
    print()
    print_table(
        [
            "target",
            "conns",
            "req/s (median)",
            "p50 ms",
            "p99 ms",
            "errors (all rounds)",
            "2xx (all rounds)",
            "ratio to ceiling",
            "ratio per round",
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
