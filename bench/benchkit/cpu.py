"""Where CPU goes: per-request CPU of the web process, its PostgreSQL backends and the broker;
py-spy profiles."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg2

from .base import ROOT, BenchError
from .setups import Setup

PY_SPY = str(ROOT / ".venv" / "bin" / "py-spy")
_BROKER_NAMES = {"redis": ("redis-server",), "amqp": ("beam.smp",)}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if gone or unreadable)."""
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return 0.0


def _children(pid: int) -> list[int]:
    """The pids of the process's descendants (none if it is gone)."""
    with contextlib.suppress(psutil.Error):
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return []


def _backends(database: str) -> list[int]:
    """The pids of PostgreSQL's backends connected to ``database`` (not this probe's own)."""
    from .setups import POSTGRES_SERVER

    connection = psycopg2.connect(f"{POSTGRES_SERVER}/{database}")
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
            return [int(row[0]) for row in cursor.fetchall()]
    finally:
        connection.close()


def _broker_pids(broker_url: str) -> list[int]:
    names = _BROKER_NAMES.get(broker_url.split(":", 1)[0], ())
    pids = []
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if process.info["name"] in names:
                pids.append(process.pid)
    return pids


class CpuMeter:
    """CPU seconds spent during a ``with`` block by the web process, the PostgreSQL backends of
    the setup's database (connections opened meanwhile count from 0), and the broker's server
    processes (shared with other users of the machine's Redis or RabbitMQ: an upper bound)."""

    def __init__(self, web_pid: int, setup: Setup | None) -> None:
        self.web_pid = web_pid
        self.setup = setup
        self.web_s = 0.0
        self.db_s: float | None = None
        self.broker_s: float | None = None
        self._start: dict[str, dict[int, float]] = {}

    def _snapshot(self) -> dict[str, dict[int, float]]:
        web = [self.web_pid, *_children(self.web_pid)]  # granian's worker is a child
        shot: dict[str, dict[int, float]] = {"web": {pid: _cpu_seconds(pid) for pid in web}}
        if self.setup is not None and self.setup.postgres_database:
            shot["db"] = {pid: _cpu_seconds(pid) for pid in _backends(self.setup.postgres_database)}
        if self.setup is not None:
            pids = _broker_pids(self.setup.broker_url)
            if pids:
                shot["broker"] = {pid: _cpu_seconds(pid) for pid in pids}
        return shot

    def __enter__(self) -> CpuMeter:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()

        def spent(kind: str) -> float | None:
            if kind not in end:
                return None
            before = self._start.get(kind, {})
            return sum(max(0.0, now - before.get(pid, 0.0)) for pid, now in end[kind].items())

        self.web_s = spent("web") or 0.0
        self.db_s = spent("db")
        self.broker_s = spent("broker")

    def per_request_ms(self, requests: int) -> dict[str, float | None]:
        """Milliseconds of CPU per request of each part (None: not measured here)."""
        if requests <= 0:
            return {"web": None, "db": None, "broker": None}

        def each(seconds: float | None) -> float | None:
            return None if seconds is None else 1000.0 * seconds / requests

        return {"web": each(self.web_s), "db": each(self.db_s), "broker": each(self.broker_s)}


def start_py_spy(pid: int, seconds: float, output: Path, wall: bool = False) -> Any:
    """Sample ``pid`` for ``seconds``: only threads holding the GIL (where CPU goes), or with
    ``wall`` every thread of it and its child processes, idle ones too (where time goes)."""
    if not Path(PY_SPY).exists():
        raise BenchError(f"--profile needs py-spy: {ROOT / '.venv/bin/pip'} install py-spy==0.4.1")
    command = [PY_SPY, "record", "--nonblocking", "-r", "100", "-f", "raw", "-o", str(output)]
    command += ["-d", str(max(1, int(seconds))), "-p", str(pid)]
    command += ["--idle", "--subprocesses", "--threads"] if wall else ["--gil", "--threads"]
    with output.with_suffix(".log").open("ab") as log:  # what py-spy said, for a failed run
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def stop_py_spy(spy: Any, timeout: float) -> None:
    """Wait for py-spy to write its samples; Ctrl-C (it then writes what it has) past
    ``timeout``, then kill it: it has been seen to hang on a process under load."""
    try:
        spy.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=10)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def folded_stacks(path: Path) -> Iterator[tuple[str, int]]:
    """Each ``stack count`` line of a py-spy folded-stacks file (other lines skipped)."""
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if count_text.isdigit():
            yield stack, int(count_text)


def summarize_profile(
    path: Path,
    top: int = 20,
    within: str | None = None,
    leave_out: str | None = None,
    thread: str | None = None,
) -> list[tuple[str, float]]:
    """The functions with the largest inclusive share of samples (folded stacks from py-spy).

    With ``within``, only stacks through a frame containing it count, as shares of those; with
    ``leave_out`` too, stacks through that frame are left out of the functions (not the total);
    with ``thread``, only the stacks of threads of that name (as :func:`summarize_threads`
    gives it) count, as shares of those.
    """
    totals: dict[str, int] = {}
    samples = 0
    for stack, count in folded_stacks(path):
        if within is not None and within not in stack:
            continue
        if thread is not None and _thread_name(stack) != thread:
            continue
        samples += count
        if leave_out is not None and leave_out in stack:
            continue
        seen: set[str] = set()
        for frame in stack.split(";"):
            if frame.startswith(("thread (", "process ")):
                continue
            key = re.sub(r":\d+\)$", ")", frame)
            if key not in seen:
                seen.add(key)
                totals[key] = totals.get(key, 0) + count
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return [(name, 100.0 * count / samples) for name, count in ranked] if samples else []


def summarize_self(path: Path, top: int = 20) -> list[tuple[str, float]]:
    """The functions with the largest exclusive share of samples (the leaf frame of a stack)."""
    totals: dict[str, int] = {}
    samples = 0
    for stack, count in folded_stacks(path):
        samples += count
        leaf = re.sub(r":\d+\)$", ")", stack.split(";")[-1])
        if leaf.startswith("thread ("):  # no Python frame: the thread itself
            leaf = re.sub(r"\d+", "N", leaf)
        totals[leaf] = totals.get(leaf, 0) + count
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return [(name, 100.0 * count / samples) for name, count in ranked] if samples else []


def summarize_threads(path: Path) -> list[tuple[str, float]]:
    """Each thread's share of the samples (py-spy ``--threads``), numbered names merged
    (``waitress-0``, ``waitress-1``, ... count as ``waitress-N``)."""
    totals: dict[str, int] = {}
    samples = 0
    for stack, count in folded_stacks(path):
        samples += count
        name = _thread_name(stack)
        totals[name] = totals.get(name, 0) + count
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return [(name, 100.0 * count / samples) for name, count in ranked] if samples else []


def _thread_name(stack: str) -> str:
    """The name of the thread of a folded stack (numbers as ``N``), ``?`` without one."""
    frames = stack.split(";", 2)
    root = frames[1] if frames[0].startswith("process ") and len(frames) > 1 else frames[0]
    name = root.split(": ", 1)[1] if root.startswith("thread (") and ": " in root else "?"
    return re.sub(r"\d+", "N", name)
