"""Benchmark ``POST /receive``: req/s, p99, CPU per request and web memory, beside a ceiling.

One run measures, all targets started at once and measured in turn, ``--rounds`` times
(A B C ... A B C ..., figures are medians over the rounds, ratios per round):

* ``ceiling``: bench/ceiling.py, bare cheroot with the dispatcher's thread count, body read, 202;
* with ``--floors``, ``floor/<server>``: the same bare app under each of ``--servers`` but
  cheroot (waitress as server.py configures it; granian as bench/granian_dispatcher.py runs it),
  the most of the ceiling any application behind that server can reach;
* ``<setup>/<server>``: the dispatcher web process on each setup (``sqlite-fs``: SQLite + the
  filesystem broker; ``pg-redis``: PostgreSQL dispatcher_bench + Redis db 5; ``pg-rabbitmq``:
  + RabbitMQ vhost dispatcher_bench) under each embedded server (``waitress``, the console
  script as shipped; ``cheroot``: bench/cheroot_dispatcher.py); with ``--before PYTHON`` also
  ``<setup>/<server>@before``, the same from another install (e.g. the previous main's wheel);
* quiet load: wrk at 8 and 64 connections, a fresh event id per request (bench/receive.lua);
* slow load (``slow``): wrk at 8 connections (timeout 2 s) while 100 idle and 100 slowloris
  connections are open, ``GET /health`` timed once a second beside it;
* CPU per request of the web process, of the PostgreSQL backends of the setup's database, and
  of the broker's server processes (shared with the machine's other users: an upper bound);
* web memory: a fresh web process per run (pg-redis), 16 concurrent bodies of 1 MiB and of
  ``DISPATCHER_MAX_BODY_BYTES``, 3 per connection, peak RSS (VmHWM); for every install too
  (``--before``, ``--also``), alternated.

Before each run the task table is emptied and the queue purged (no worker runs). After it,
every task id answered 2xx must be a row of the database AND the task id of a message taken
from the broker's queue (waited for up to ``--publish-wait`` seconds, since a batch publisher
or recovery may send it after the answer), and a quiet run must have 0 errors; otherwise the
benchmark exits 1. Under the slow load, cheroot is expected to starve (its threads held by the
slow connections): its errors are reported, not failed.

    .venv/bin/python bench/receive.py [--quick] [--rounds 3] [--seconds 5] [--setups ...]
        [--servers waitress,cheroot] [--floors] [--slow-setups ...] [--before PYTHON] [--profile]
        [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import granian_dispatcher
import receive_report
from benchkit import (
    CEILING,
    MIB,
    SERVERS,
    SETUPS,
    BenchError,
    CpuMeter,
    HealthProbe,
    Service,
    Setup,
    SlowClients,
    WrkResult,
    body_peak,
    broker_task_ids,
    dispatcher_env,
    empty_tasks,
    event_template,
    example_event,
    make_setup,
    print_machine,
    purge_broker,
    run_wrk,
    scratch,
    start_ceiling,
    start_py_spy,
    start_web,
    stop_py_spy,
    task_ids,
)

from pacifica.dispatcher_proxymod.settings import Settings

CONNECTIONS = (8, 64)
#: The length of a profiled run (py-spy samples at 100 Hz, only while a thread holds the GIL).
PROFILE_SECONDS = 12.0
SLOW_CONNECTIONS = 8
#: The floor's threads where a server's are not the dispatcher's.
FLOOR_THREADS = {"granian": granian_dispatcher.BLOCKING_THREADS}
#: Large-body requests per connection in the memory part, and its connections.
LARGE_REQUESTS, LARGE_CONNECTIONS = 3, 16


@dataclass
class Target:
    """One server under load: the ceiling (no setup) or the dispatcher on a setup."""

    name: str
    service: Service
    setup: Setup | None = None
    state_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    server: str = "cheroot"


@dataclass
class Run:
    """One wrk run of one target: what wrk saw, CPU per request, what the checks found."""

    target: str
    load: str
    connections: int
    round: int
    wrk: WrkResult
    cpu_ms: dict[str, float | None]
    problems: list[str]
    messages: int = 0
    duplicates: int = 0
    health: list[float | None] = field(default_factory=list)


def check(target: Target, result: WrkResult, publish_wait: float) -> tuple[list[str], int, int]:
    """Problems of one run: a 2xx'd id that is no row, or has no message on the broker.

    Also the count of messages taken and of task ids sent more than once (a re-publish).
    """
    if target.setup is None or target.state_dir is None:
        return [], 0, 0
    answered = set(result.task_ids)
    problems = []
    if len(answered) != result.ok:
        problems.append(f"{result.ok} 2xx answers but {len(answered)} distinct task ids")
    missing_rows = answered - task_ids(target.setup)
    if missing_rows:
        problems.append(f"{len(missing_rows)} task(s) answered 2xx are not rows of the database")
    seen = broker_task_ids(target.env, answered, publish_wait)
    missing_messages = answered - set(seen)
    if missing_messages:
        problems.append(
            f"{len(missing_messages)} task(s) answered 2xx have no message on the broker "
            f"after {publish_wait:g} s (e.g. {sorted(missing_messages)[:2]})"
        )
    return problems, len(seen), len(seen) - len(set(seen))


def measure(
    target: Target,
    template: str,
    connections: int,
    seconds: float,
    work: Path,
    slow: bool,
    publish_wait: float,
    profile: Path | None = None,
    wall: bool = False,
) -> Run:
    """One run: reset the setup, load (quiet or slow), measure CPU, check the outcome."""
    if target.setup is not None and target.state_dir is not None:
        empty_tasks(target.setup)
        purge_broker(target.setup, target.state_dir)
    crowd = SlowClients(target.service.port) if slow else None
    probe = HealthProbe(target.service.url) if slow else None
    if profile is not None:  # a longer run: enough samples to tell where the time goes
        seconds = max(seconds, PROFILE_SECONDS)
    spy = start_py_spy(target.service.pid, seconds - 1, profile, wall) if profile else None
    try:
        if crowd is not None:
            time.sleep(0.5)
        with CpuMeter(target.service.pid, target.setup) as meter:
            result = run_wrk(
                target.service.url,
                template,
                connections,
                seconds,
                work,
                collect_ids=target.setup is not None,
                timeout_s=2 if slow else 10,
            )
    finally:
        health = probe.stop() if probe is not None else []
        if crowd is not None:
            crowd.close()
        if spy is not None:
            stop_py_spy(spy, timeout=5)
    problems, messages, duplicates = check(target, result, publish_wait)
    load = "slow" if slow else "quiet"
    if result.errors and not (slow and target.server == "cheroot"):
        problems.append(f"{result.errors} errors (statuses {result.statuses})")
    return Run(
        target.name,
        load,
        connections,
        0,
        result,
        meter.per_request_ms(result.requests),
        problems,
        messages,
        duplicates,
        health,
    )


def memory_part(
    servers: list[str],
    installs: list[tuple[str, str]],
    rounds: int,
    work: Path,
    publish_wait: float,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Peak RSS of a fresh web process (pg-redis) under 16 concurrent large bodies, for each
    server and install (``(suffix, python)``: this checkout's is ``("", "")``), alternated."""
    limit = Settings().max_body_bytes
    sizes = [(MIB, "1 MiB"), (limit, f"{limit / MIB:g} MiB (the limit)")]
    state = work / "memory-state"
    state.mkdir()
    setup = make_setup("pg-redis", state, "memory")
    env = dispatcher_env(setup, state)
    samples: list[dict[str, Any]] = []
    problems: list[str] = []
    for _ in range(rounds):
        for size, label in sizes:
            template = event_template(example_event(), pad_to=size)
            for server, (suffix, python) in itertools.product(servers, installs):
                empty_tasks(setup)
                purge_broker(setup, state)

                def fresh(server: str = server, python: str = python) -> Service:
                    return start_web(f"memory-{server}", env, work, server=server, python=python)

                count = LARGE_REQUESTS * LARGE_CONNECTIONS
                at_start, peak, statuses, ids = body_peak(fresh, template, LARGE_CONNECTIONS, count)
                server_label = f"{server}{suffix}"
                where = f"memory {server_label} {label}"
                ok = sum(n for status, n in statuses.items() if status.startswith("2"))
                if ok != count:
                    problems.append(f"{where}: answers {statuses}")
                missing = set(ids) - task_ids(setup)
                if missing:
                    problems.append(f"{where}: {len(missing)} 2xx'd tasks are not rows")
                seen = set(broker_task_ids(env, set(ids), publish_wait))
                if set(ids) - seen:
                    problems.append(f"{where}: {len(set(ids) - seen)} 2xx'd tasks have no message")
                samples.append(
                    {
                        "server": server_label,
                        "body": label,
                        "start": at_start,
                        "peak": peak,
                        "ok": ok,
                    }
                )
                print(
                    f"  memory {server_label:<8} {label:<20} start {at_start:6.1f} MiB  peak "
                    f"{peak:6.1f} MiB  statuses {statuses}",
                    flush=True,
                )
    empty_tasks(setup)
    return samples, problems


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 4 s, slow: pg-redis")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated setups")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="waitress,cheroot (granian too, once installed)",
    )
    parser.add_argument(
        "--floors", action="store_true", help="the bare app under each server too: floor/<server>"
    )
    parser.add_argument("--slow-setups", default=None, help="setups with the slow load too")
    parser.add_argument("--memory-rounds", type=int, default=None, help="0: no memory part")
    parser.add_argument("--before", default="", help="another install's python: @before targets")
    parser.add_argument("--before-label", default="before", help="their suffix (after the @)")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="more installs, as --before (repeatable)",
    )
    parser.add_argument("--publish-wait", type=float, default=15.0, help="seconds, per run")
    parser.add_argument("--json", type=Path, default=None, help="write every run here")
    parser.add_argument("--keep", action="store_true", help="keep logs and state")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy (GIL holders) on each waitress dispatcher in its last 8-connection run "
        f"(which then lasts {PROFILE_SECONDS:g} s)",
    )
    parser.add_argument(
        "--profile-wall",
        action="store_true",
        help="with --profile: sample every thread, waiting ones too (where the latency goes)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 4.0
    if args.slow_setups is None:
        args.slow_setups = "pg-redis" if args.quick else args.setups
    if args.memory_rounds is None:
        args.memory_rounds = 1 if args.quick else 2
    return args


def installs_of(args: argparse.Namespace) -> list[tuple[str, str]]:
    """This checkout's install and those of ``--before`` and ``--also``: (suffix, python)."""
    installs = [("", "")] + ([(f"@{args.before_label}", args.before)] if args.before else [])
    for also in args.also:
        label, _, python = also.partition("=")
        installs.append((f"@{label}", python))
    return installs


def start_targets(args: argparse.Namespace, work: Path) -> list[Target]:
    """The ceiling and every dispatcher target, started and warmed up."""
    threads = Settings().http.threads
    targets = [Target(CEILING, start_ceiling(work, threads))]
    if args.floors:
        for server in args.servers.split(","):
            if server != "cheroot":  # under cheroot the bare app is the ceiling
                floor = start_ceiling(work, FLOOR_THREADS.get(server, threads), server)
                targets.append(Target(floor.name, floor, server=server))
    installs = installs_of(args)
    for setup_name in args.setups.split(","):
        state = work / setup_name
        state.mkdir()
        setup = make_setup(setup_name, state, "receive")
        empty_tasks(setup)
        purge_broker(setup, state)
        env = dispatcher_env(setup, state)
        for server in args.servers.split(","):
            for suffix, python in installs:
                name = f"{setup_name}/{server}{suffix}"
                service = start_web(name, env, work, server=server, python=python)
                targets.append(Target(name, service, setup, state, env, server))
    template = event_template(example_event())
    for target in targets:  # warm up: imports, caches, connections of every thread
        run_wrk(target.service.url, template, 16, 1, work, collect_ids=False)
    return targets


def main() -> int:
    """Run the benchmark and print its tables."""
    args = parse_args()
    started = time.monotonic()
    print_machine()
    template = event_template(example_event())
    print(
        f"# POST /receive, example event ({len(template.encode())} bytes), {args.rounds} rounds "
        f"x {args.seconds:g} s; quiet at {CONNECTIONS}, slow at {SLOW_CONNECTIONS} connections "
        f"(+ 100 idle + 100 slowloris) on {args.slow_setups}",
        flush=True,
    )
    runs: list[Run] = []
    memory: list[dict[str, Any]] = []
    problems: list[str] = []
    profiles: dict[str, Path] = {}
    slow_setups = set(args.slow_setups.split(","))
    with scratch("bench-receive-", keep=args.keep) as work:
        targets: list[Target] = []
        try:
            targets = start_targets(args, work)
            for number in range(1, args.rounds + 1):
                plan = [(c, False) for c in CONNECTIONS] + [(SLOW_CONNECTIONS, True)]
                for connections, slow in plan:
                    for target in targets:
                        if slow and (target.setup is None or target.setup.name not in slow_setups):
                            continue
                        profile = None
                        if (
                            args.profile
                            and number == args.rounds
                            and connections == CONNECTIONS[0]
                            and not slow
                            and target.server == "waitress"
                            and target.setup is not None
                        ):
                            profile = work / f"profile-{target.name.replace('/', '-')}.txt"
                            profiles[target.name] = profile
                        run = measure(
                            target,
                            template,
                            connections,
                            args.seconds,
                            work,
                            slow,
                            args.publish_wait,
                            profile,
                            args.profile_wall,
                        )
                        run.round = number
                        runs.append(run)
                        problems += [
                            f"round {number} {target.name} {run.load} c{connections}: {p}"
                            for p in run.problems
                        ]
                        receive_report.print_run(run)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            for target in targets:
                target.service.stop()
        if args.memory_rounds:
            print("# web memory (fresh process per run, pg-redis)", flush=True)
            try:
                memory, found = memory_part(
                    args.servers.split(","),
                    installs_of(args),
                    args.memory_rounds,
                    work,
                    args.publish_wait,
                )
            except BenchError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            problems += found
        receive_report.print_profiles(profiles, args.profile_wall)
    receive_report.print_tables(runs, memory)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "runs": [asdict(r) for r in runs]}
                | {"memory": memory, "problems": problems},
                default=str,
                indent=1,
            )
        )
    print(f"\n# {time.monotonic() - started:.0f} s in all")
    if problems:
        print("\nPROBLEMS:\n  " + "\n  ".join(problems))
        return 1
    print(
        "\nAfter every run, every task answered 2xx was a row of its database and the task id "
        "of a message on its broker; 0 errors (cheroot under the slow load excepted)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
