"""The lines and tables bench/receive.py prints: per run, per target (medians), the targets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from benchkit import (
    CEILING,
    is_bare_app,
    median,
    print_table,
    summarize_profile,
    summarize_self,
    summarize_threads,
)

#: Frames worth showing from a profile (the rest is the servers' plumbing).
INTERESTING = (
    "dispatcher_proxymod",
    "jsonpath2",
    "peewee",
    "celery",
    "kombu",
    "orjson",
    "msgspec",
    "psycopg2",
    "redis",
    "amqp",
    "waitress",
    "cheroot",
    "cherrypy",
    "prometheus",
    "logging",
    "uuid",
)
#: issue 11's targets: (setup, connections) -> least ratio to the ceiling, largest p99 (ms).
TARGETS = {
    ("pg-redis", 8): (0.45, 15.0),
    ("pg-rabbitmq", 8): (0.35, None),
    ("sqlite-fs", 8): (0.40, None),
    ("pg-redis", 64): (0.70, None),
    ("pg-rabbitmq", 64): (0.70, None),
    ("sqlite-fs", 64): (0.70, None),
}
WEB_RSS_LIMIT_MIB = 80.0
#: The frame of the receive handler (our code from parsed request to answer).
RECEIVE_FRAME = "receive (pacifica/dispatcher_proxymod/web/receive.py"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_run(run: Any) -> None:
    """One line per run, as it ends."""
    wrk = run.wrk
    cpu = run.cpu_ms
    line = (
        f"  round {run.round} {run.target:<24} {run.load:<5} c{run.connections:<3} "
        f"{wrk.rps:7.0f} req/s  p50 {wrk.p50_ms:6.1f}  p99 {wrk.p99_ms:7.1f} ms  "
        f"err {wrk.errors}  cpu web/db/broker {_ms(cpu['web'])}/{_ms(cpu['db'])}/"
        f"{_ms(cpu['broker'])} ms"
    )
    if not is_bare_app(run.target):
        line += f"  msgs {run.messages}" + (f" (dup {run.duplicates})" if run.duplicates else "")
        line += "  checked" if not run.problems else f"  PROBLEMS {run.problems}"
    if run.load == "slow":
        answered = [t for t in run.health if t is not None]
        line += f"  /health {len(answered)}/{len(run.health)}"
    print(line, flush=True)


def print_profiles(profiles: dict[str, Path], wall: bool = False) -> None:
    """Each profile: the threads' shares of the CPU (GIL) samples, then within each busy
    thread the inclusive share of our code's and the libraries' frames, then the top frames."""
    for name, profile in profiles.items():
        threads = summarize_threads(profile) if profile.exists() else []
        if not threads:
            print(f"\n# no profile of {name} (py-spy wrote no samples)")
            continue
        what = "every thread, waiting too" if wall else "GIL holders"
        print(f"\n# profile of {name} at 8 connections (py-spy, {what}): share of each thread")
        for thread, share in threads:
            print(f"  {share:5.1f}%  {thread}")
        for thread, share in threads:
            if share < 5.0:
                continue
            print(f"# {name}, thread {thread} ({share:.0f}% of all): inclusive shares within it")
            for frame, part in summarize_profile(profile, top=80, thread=thread):
                if part >= 2.0 and any(word in frame for word in INTERESTING):
                    print(f"  {part:5.1f}%  {frame}")
        if wall:  # what a request waits for: shares of the samples inside the receive handler
            print(f"# {name}: within {RECEIVE_FRAME} (a request's time)")
            for frame, part in summarize_profile(profile, top=40, within=RECEIVE_FRAME):
                if part >= 1.0 and any(word in frame for word in INTERESTING):
                    print(f"  {part:5.1f}%  {frame}")
        print(f"# {name}: exclusive share of all samples (the frame on top of the stack)")
        for frame, part in summarize_self(profile, top=20):
            print(f"  {part:5.1f}%  {frame}")


def _group(runs: list[Any]) -> dict[tuple[str, str, int], list[Any]]:
    grouped: dict[tuple[str, str, int], list[Any]] = defaultdict(list)
    for run in runs:
        grouped[(run.target, run.load, run.connections)].append(run)
    return grouped


def _ratios(
    grouped: dict[tuple[str, str, int], list[Any]], key: tuple[str, str, int]
) -> list[float]:
    """Each run's req/s over the same round's quiet ceiling at the same connection count."""
    ceilings = {r.round: r.wrk.rps for r in grouped.get((CEILING, "quiet", key[2]), [])}
    return [r.wrk.rps / ceilings[r.round] for r in grouped[key] if ceilings.get(r.round)]


def _cpu(runs: list[Any], part: str) -> str:
    values = [r.cpu_ms[part] for r in runs if r.cpu_ms[part] is not None]
    return _ms(median(values)) if values else "-"


def print_tables(runs: list[Any], memory: list[dict[str, Any]]) -> None:
    """The quiet, slow, memory and targets tables (Markdown)."""
    grouped = _group(runs)
    names = list(dict.fromkeys(run.target for run in runs))
    rows = []
    for connections in sorted({r.connections for r in runs if r.load == "quiet"}):
        for name in names:
            key = (name, "quiet", connections)
            if key not in grouped:
                continue
            measured = grouped[key]
            ratios = _ratios(grouped, key)
            rows.append(
                [
                    name,
                    connections,
                    f"{median([r.wrk.rps for r in measured]):.0f}",
                    f"{median(ratios):.2f}",
                    " ".join(f"{v:.2f}" for v in ratios),
                    f"{median([r.wrk.p50_ms for r in measured]):.1f}",
                    f"{median([r.wrk.p99_ms for r in measured]):.1f}",
                    sum(r.wrk.errors for r in measured),
                    sum(r.wrk.ok for r in measured),
                    _cpu(measured, "web"),
                    _cpu(measured, "db"),
                    _cpu(measured, "broker"),
                ]
            )
    print("\n## quiet load (medians over rounds; ratio: to the same round's ceiling)\n")
    print_table(
        [
            "target",
            "conns",
            "req/s",
            "ratio to ceiling",
            "ratio per round",
            "p50 ms",
            "p99 ms",
            "errors",
            "2xx",
            "web CPU ms/req",
            "PG CPU ms/req",
            "broker CPU ms/req",
        ],
        rows,
    )
    slow_rows = []
    for name in names:
        key = (name, "slow", 8)
        if key not in grouped:
            continue
        measured = grouped[key]
        ratios = _ratios(grouped, key)
        timings = [t for r in measured for t in r.health]
        answered = [t for t in timings if t is not None]
        slow_rows.append(
            [
                name,
                f"{median([r.wrk.rps for r in measured]):.0f}",
                f"{median(ratios):.2f}",
                f"{median([r.wrk.p99_ms for r in measured]):.1f}",
                sum(r.wrk.errors for r in measured)
                if any(r.wrk.requests for r in measured)
                else "starved: no answer",
                sum(r.wrk.ok for r in measured),
                _cpu(measured, "web"),
                _cpu(measured, "db"),
                f"{len(answered)}/{len(timings)}",
                f"{max(answered):.3f}" if answered else "-",
            ]
        )
    if slow_rows:
        print(
            "\n## slow load: 8 wrk connections (timeout 2 s) + 100 idle + 100 slowloris "
            "(ratio: to the same round's quiet ceiling at 8)\n"
        )
        print_table(
            [
                "target",
                "req/s",
                "ratio to ceiling",
                "p99 ms",
                "errors",
                "2xx",
                "web CPU ms/req",
                "PG CPU ms/req",
                "/health answered",
                "/health max s",
            ],
            slow_rows,
        )
    memory_rows = _memory_rows(memory)
    if memory_rows:
        print("\n## web memory: fresh process per run, 16 concurrent bodies, 48 per run\n")
        print_table(
            ["server", "body", "RSS at start MiB", "peak RSS MiB (median)", "per run", "2xx"],
            memory_rows,
        )
    _print_targets(grouped, names, memory)


def _memory_rows(memory: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for server in dict.fromkeys(m["server"] for m in memory):
        for body in dict.fromkeys(m["body"] for m in memory):
            chosen = [m for m in memory if m["server"] == server and m["body"] == body]
            rows.append(
                [
                    server,
                    body,
                    f"{median([m['start'] for m in chosen]):.1f}",
                    f"{median([m['peak'] for m in chosen]):.1f}",
                    " ".join(f"{m['peak']:.1f}" for m in chosen),
                    sum(m["ok"] for m in chosen),
                ]
            )
    return rows


def _print_targets(
    grouped: dict[tuple[str, str, int], list[Any]], names: list[str], memory: list[dict[str, Any]]
) -> None:
    rows = []
    for name in names:
        setup = name.split("/", 1)[0]
        for connections in (8, 64):
            goal = TARGETS.get((setup, connections))
            key = (name, "quiet", connections)
            if goal is None or key not in grouped:
                continue
            least, p99_limit = goal
            value = median(_ratios(grouped, key))
            p99 = median([r.wrk.p99_ms for r in grouped[key]])
            met = value >= least and (p99_limit is None or p99 <= p99_limit)
            wanted = f">= {least:.2f}" + (f", p99 <= {p99_limit:g} ms" if p99_limit else "")
            rows.append([name, connections, wanted, f"{value:.2f}, p99 {p99:.1f} ms", _yes(met)])
    for server in dict.fromkeys(m["server"] for m in memory):
        peaks = [m["peak"] for m in memory if m["server"] == server and "limit" in m["body"]]
        if peaks:
            peak = median(peaks)
            rows.append(
                [
                    f"web RSS {server}",
                    16,
                    "< 80 MiB at the limit",
                    f"{peak:.1f} MiB",
                    _yes(peak < 80),
                ]
            )
    if rows:
        print("\n## issue 11's targets\n")
        print_table(["target", "conns", "wanted", "measured (median)", "met?"], rows)


def _yes(met: bool) -> str:
    return "yes" if met else "NO"
