"""Shared helpers of the benchmarks: machine facts, setups, processes, wrk, memory sampling.

Every benchmark runs against real processes started from this checkout with the dev venv
(``.venv/bin/python -m pacifica.dispatcher_proxymod ...``) and stops only what it started.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
EXAMPLES = ROOT / "examples"
EXAMPLE_EVENT = EXAMPLES / "event.json"
EXAMPLE_DATA = EXAMPLES / "data"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
WRK_SCRIPT = BENCH / "receive.lua"
EVENT_ID_PLACEHOLDER = "@EVENT_ID@"
#: Length of the ids receive.lua puts in place of the placeholder ("<10-char tag>-<t>-<8 digits>").
WRK_ID_LENGTH = 21
MIB = 1024 * 1024

#: The machine's PostgreSQL (trust auth) and the benchmarks' own places in it and in the brokers.
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"
BENCH_DATABASE = "dispatcher_bench"
RABBIT_VHOST = "dispatcher_bench"
#: Each script its own database and Redis db, so two benchmarks never share a queue or table
#: (the project's tests use Redis dbs 0-3, the Pacifica harness 10-12).
SLOTS = {
    "receive": (BENCH_DATABASE, 5),
    "e2e": (BENCH_DATABASE + "_e2e", 6),
    "memory": (BENCH_DATABASE + "_memory", 7),
    "slow": (BENCH_DATABASE + "_slow", 8),
    "ui": (BENCH_DATABASE + "_ui", 9),
}
SETUPS = ("sqlite-fs", "pg-redis", "pg-rabbitmq")

_OUR_VARIABLES = ("DISPATCHER_", "DATABASE_URL", "BROKER_URL", "BACKEND_URL")


class BenchError(Exception):
    """A benchmark could not run or found the service misbehaving."""


# --------------------------------------------------------------------------- figures


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def ratio(value: float, baseline: float) -> float:
    """``value / baseline`` (NaN when the baseline is 0)."""
    return value / baseline if baseline else float("nan")


def machine() -> dict[str, Any]:
    """Date, CPU count and model, Python and load: the facts every report starts with."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def print_machine() -> None:
    """One line with the machine facts."""
    facts = machine()
    print(
        f"# {facts['date']}  nproc={facts['nproc']}  cpu={facts['cpu']}  "
        f"python={facts['python']}  load(1m)={facts['loadavg_1m']}",
        flush=True,
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (so it can be pasted into the README as is)."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    sys.stdout.flush()


# --------------------------------------------------------------------------- setups


@dataclass(frozen=True)
class Setup:
    """A database and a broker for the dispatcher."""

    name: str
    database_url: str
    broker_url: str


def make_setup(name: str, state_dir: Path, slot: str) -> Setup:
    """The named setup for one script (``slot``: its database, Redis db and RabbitMQ queue).

    PostgreSQL databases and the RabbitMQ vhost are created when missing.
    """
    if name == "sqlite-fs":
        return Setup(name, f"sqlite:///{state_dir / 'dispatcher.sqlite3'}", "filesystem://")
    if name not in SETUPS:
        raise BenchError(f"unknown setup {name!r}: one of {', '.join(SETUPS)}")
    database_name, redis_db = SLOTS[slot]
    ensure_postgres_database(database_name)
    database = f"{POSTGRES_SERVER}/{database_name}"
    if name == "pg-redis":
        return Setup(name, database, f"redis://127.0.0.1:6379/{redis_db}")
    ensure_rabbit_vhost()
    return Setup(name, database, f"amqp://guest:guest@127.0.0.1:5672/{RABBIT_VHOST}")


def ensure_postgres_database(name: str) -> None:
    """Create a benchmark database once."""
    connection = psycopg2.connect(f"{POSTGRES_SERVER}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {name}")
    finally:
        connection.close()


def ensure_rabbit_vhost() -> None:
    """Create the benchmark vhost once (guest may use it)."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True
    )
    if RABBIT_VHOST not in listed.stdout.split():
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", RABBIT_VHOST], check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", RABBIT_VHOST, "guest", ".*", ".*", ".*"],
            check=True,
        )


def dispatcher_env(setup: Setup, state_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without our variables, plus the setup and ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_OUR_VARIABLES)}
    env.update(
        DATABASE_URL=setup.database_url,
        BROKER_URL=setup.broker_url,
        DISPATCHER_STATE_DIR=str(state_dir),
        DISPATCHER_WORK_DIR=str(state_dir / "work"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def _sql(setup: Setup) -> Iterator[Any]:
    """A DB-API connection to the setup's database (not through the code under test)."""
    connection: Any
    if setup.database_url.startswith("sqlite:"):
        connection = sqlite3.connect(setup.database_url[len("sqlite:///") :], timeout=60)
    else:
        connection = psycopg2.connect(setup.database_url)
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


def _table_exists(cursor: Any, setup: Setup) -> bool:
    if setup.database_url.startswith("sqlite:"):
        cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'dispatcher_task'")
    else:
        cursor.execute("SELECT 1 FROM pg_tables WHERE tablename = 'dispatcher_task'")
    return cursor.fetchone() is not None


def empty_tasks(setup: Setup) -> None:
    """Delete every task row (the table exists once a dispatcher process has started)."""
    with _sql(setup) as connection:
        cursor = connection.cursor()
        if _table_exists(cursor, setup):
            statement = "DELETE FROM dispatcher_task"
            if not setup.database_url.startswith("sqlite:"):
                statement = "TRUNCATE dispatcher_task"
            cursor.execute(statement)


def task_ids(setup: Setup) -> set[str]:
    """The ids of every task row."""
    with _sql(setup) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT id FROM dispatcher_task")
        return {row[0] for row in cursor.fetchall()}


def task_rows(setup: Setup, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Every task row with the given columns."""
    with _sql(setup) as connection:
        cursor = connection.cursor()
        statement = f"SELECT {', '.join(columns)} FROM dispatcher_task"  # noqa: S608 - our names
        cursor.execute(statement)
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def purge_broker(setup: Setup, state_dir: Path) -> None:
    """Drop every message of the dispatcher's queue."""
    if setup.broker_url.startswith("filesystem:"):
        queue = state_dir / "broker" / "queue"
        if queue.is_dir():
            for message in queue.iterdir():
                message.unlink(missing_ok=True)
        return
    from kombu.connection import Connection

    with Connection(setup.broker_url) as connection:
        channel = connection.channel()
        with contextlib.suppress(Exception):  # the queue does not exist yet
            channel.queue_purge("pacifica.dispatcher_proxymod")


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    """A process this benchmark started, in its own session, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def log_tail(self, size: int = 3000) -> str:
        """The end of the log, for error messages."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-size:]
        return ""

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL to this process's own group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self in _running:
            _running.remove(self)


#: Every process this benchmark started and has not stopped yet.
_running: list[Service] = []


def _stop_all() -> None:
    """At exit, whatever ended the run (an error, Ctrl-C, SIGTERM): stop what is still running."""
    for service in reversed(_running):
        service.stop(timeout=20)


def _exit_on_sigterm(number: int, _frame: object) -> None:
    raise SystemExit(128 + number)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _exit_on_sigterm)


def start(name: str, command: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Service:
    """Start ``command`` in a new session, output to ``<log_dir>/<name>.log``; stopped at exit
    of the benchmark at the latest."""
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=str(log_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(name, process, log)
    _running.append(service)
    return service


def wait_http(service: Service, path: str, timeout: float = 60.0) -> None:
    """Wait until ``GET service.url + path`` answers below 500."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise BenchError(f"{service.name} exited early:\n{service.log_tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(service.url + path, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise BenchError(f"{service.name} did not answer within {timeout:g} s:\n{service.log_tail()}")


def start_web(name: str, env: Mapping[str, str], log_dir: Path) -> Service:
    """The dispatcher's web server (the console script's default command) on a free port."""
    port = free_port()
    command = [PYTHON, "-m", "pacifica.dispatcher_proxymod", "--host", "127.0.0.1"]
    service = start(name, [*command, "--port", str(port)], env, log_dir)
    service.url = f"http://127.0.0.1:{port}"
    wait_http(service, "/health")
    return service


def start_ceiling(log_dir: Path, threads: int = 16) -> Service:
    """The bare cheroot app (``bench/ceiling.py``) with as many threads as the dispatcher."""
    port = free_port()
    command = [PYTHON, str(BENCH / "ceiling.py"), "--port", str(port), "--threads", str(threads)]
    service = start("ceiling", command, dict(os.environ), log_dir)
    service.url = f"http://127.0.0.1:{port}"
    wait_http(service, "/")
    return service


def start_worker(
    name: str, env: Mapping[str, str], log_dir: Path, concurrency: int, timeout: float = 120.0
) -> Service:
    """A real Celery worker (the console script's ``worker`` command), waited for until ready."""
    command = [
        PYTHON,
        "-m",
        "pacifica.dispatcher_proxymod",
        "worker",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"{name}-{uuid.uuid4().hex[:8]}@%h",
    ]
    service = start(name, command, env, log_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise BenchError(f"worker {name} exited early:\n{service.log_tail()}")
        if " ready." in service.log_tail(20_000):
            return service
        time.sleep(0.2)
    service.stop()
    raise BenchError(f"worker {name} not ready within {timeout:g} s:\n{service.log_tail()}")


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder (kept when ``keep``, for the logs)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            print(f"# logs and state kept in {folder}")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- events


def example_event() -> dict[str, Any]:
    """The example event as a fresh dict."""
    document: dict[str, Any] = json.loads(EXAMPLE_EVENT.read_text())
    return document


def event_template(event: Mapping[str, Any], pad_to: int | None = None) -> str:
    """The event's JSON with ``@EVENT_ID@`` in place of its id (for wrk's script).

    With ``pad_to``, a ``bench.padding`` key/value makes the body exactly ``pad_to`` bytes once
    receive.lua has put an id of :data:`WRK_ID_LENGTH` characters in place of the placeholder.
    """
    document = json.loads(json.dumps(event))
    document["eventID"] = EVENT_ID_PLACEHOLDER
    if pad_to is not None:
        padding = {"destinationTable": "TransactionKeyValue", "key": "bench.padding", "value": ""}
        document["data"].append(padding)
        base = len(json.dumps(document).encode()) - len(EVENT_ID_PLACEHOLDER) + WRK_ID_LENGTH
        if pad_to < base:
            raise BenchError(f"a body of {pad_to} bytes cannot hold the event ({base} bytes)")
        padding["value"] = "x" * (pad_to - base)
    return json.dumps(document)


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    statuses: dict[str, int]
    task_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Answers with a 2xx status."""
        return sum(count for status, count in self.statuses.items() if status.startswith("2"))

    @property
    def errors(self) -> int:
        """Socket errors plus answers that are not 2xx."""
        return self.socket_errors + self.requests - self.ok


def run_wrk(
    url: str,
    template: str,
    connections: int,
    seconds: float,
    work_dir: Path,
    threads: int = 2,
    collect_ids: bool = True,
    timeout_s: int = 10,
) -> WrkResult:
    """POST ``template`` to ``url``/receive, a fresh event id per request, for ``seconds``."""
    body_file = work_dir / f"body-{uuid.uuid4().hex}.json"
    body_file.write_text(template)
    ids_prefix = work_dir / f"ids-{uuid.uuid4().hex}" if collect_ids else None
    run_tag = uuid.uuid4().hex[:10]
    if threads > 9:
        raise BenchError("receive.lua's ids have the fixed length of 1-digit thread numbers")
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(WRK_SCRIPT),
        f"{url}/receive",
        "--",
        str(body_file),
        run_tag,
        str(ids_prefix) if ids_prefix else "",
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + timeout_s + 60
    )
    body_file.unlink(missing_ok=True)
    lines = [line for line in finished.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if finished.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({finished.returncode}): {finished.stdout}{finished.stderr}")
    data = json.loads(lines[-1][len("BENCH_JSON ") :])
    ids: list[str] = []
    if ids_prefix is not None:
        for path in sorted(work_dir.glob(ids_prefix.name + ".*")):
            ids.extend(line for line in path.read_text().splitlines() if line)
            path.unlink()
    seconds_run = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        seconds=seconds_run,
        rps=data["requests"] / seconds_run if seconds_run else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        socket_errors=sum(data["errors"].values()),
        statuses={str(key): int(value) for key, value in data["statuses"].items()},
        task_ids=ids,
    )


# --------------------------------------------------------------------------- memory


def _status_kib(pid: int, key: str) -> int:
    """A ``VmHWM``/``VmRSS`` line of /proc/<pid>/status, in KiB (0 if gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    """The process's proportional set size (shared pages split among their users), in KiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def _label(process: psutil.Process, root_pid: int) -> str:
    with contextlib.suppress(psutil.Error):
        cmdline = process.cmdline()
        if "worker" in cmdline:
            return "celery main" if process.pid == root_pid else "pool child"
        name = process.name()
        if "run_model.py" in " ".join(cmdline):
            return "model (" + name + ")"
        return name
    return "?"


class TreeMemory:
    """Samples a process tree's memory: each process's VmHWM and the tree's summed PSS.

    VmHWM is the kernel's own peak RSS of one process; the tree's peak is the largest sum of
    PSS (so pages a forked child shares with its parent count once) seen in one sample (every
    ``interval`` seconds).
    """

    def __init__(self, root_pid: int, interval: float = 0.02) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.peak_hwm_kib: dict[int, int] = {}
        self.labels: dict[int, str] = {}
        self.parents: dict[int, int] = {}
        self.peak_tree_pss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Read the tree once."""
        try:
            root = psutil.Process(self.root_pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for member in members:
            pid = member.pid
            if pid not in self.labels:
                self.labels[pid] = _label(member, self.root_pid)
                with contextlib.suppress(psutil.Error):
                    self.parents[pid] = member.ppid()
            hwm = _status_kib(pid, "VmHWM")
            self.peak_hwm_kib[pid] = max(self.peak_hwm_kib.get(pid, 0), hwm)
            total += _pss_kib(pid)
        self.peak_tree_pss_kib = max(self.peak_tree_pss_kib, total)

    def peak_of(self, predicate: Any = None) -> float:
        """The largest VmHWM (MiB) among the processes whose label passes ``predicate``."""
        chosen = [
            kib
            for pid, kib in self.peak_hwm_kib.items()
            if predicate is None or predicate(self.labels.get(pid, "?"))
        ]
        return max(chosen, default=0) / 1024

    def tree_mib(self) -> float:
        """The largest summed PSS of the tree (MiB)."""
        return self.peak_tree_pss_kib / 1024


# --------------------------------------------------------------------------- profiles

PY_SPY = str(ROOT / ".venv" / "bin" / "py-spy")


def start_py_spy(pid: int, seconds: float, output: Path, wall: bool = False) -> Any:
    """Sample ``pid`` for ``seconds``: only threads holding the GIL (where CPU goes), or with
    ``wall`` every thread of it and its child processes, idle ones too (where time goes)."""
    if not Path(PY_SPY).exists():
        raise BenchError(f"--profile needs py-spy: {ROOT / '.venv/bin/pip'} install py-spy==0.4.1")
    command = [PY_SPY, "record", "--nonblocking", "-r", "100", "-f", "raw", "-o", str(output)]
    command += ["-d", str(max(1, int(seconds))), "-p", str(pid)]
    command += ["--idle", "--subprocesses"] if wall else ["--gil"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(
    path: Path, top: int = 20, within: str | None = None, leave_out: str | None = None
) -> list[tuple[str, float]]:
    """The functions with the largest inclusive share of samples (folded stacks from py-spy).

    With ``within``, only stacks through a frame containing it count, as shares of those; with
    ``leave_out`` too, stacks through that frame are left out of the functions (not the total).
    """
    import re

    totals: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        if within is not None and within not in stack:
            continue
        count = int(count_text)
        samples += count
        if leave_out is not None and leave_out in stack:
            continue
        seen: set[str] = set()
        for frame in stack.split(";"):
            key = re.sub(r":\d+\)$", ")", frame)
            if key not in seen:
                seen.add(key)
                totals[key] = totals.get(key, 0) + count
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return [(name, 100.0 * count / samples) for name, count in ranked] if samples else []


def start_cherrypy_floor(log_dir: Path) -> Service:
    """CherryPy configured as the dispatcher, doing nothing (``bench/cherrypy_floor.py``)."""
    port = free_port()
    command = [PYTHON, str(BENCH / "cherrypy_floor.py"), "--port", str(port)]
    service = start("cherrypy-floor", command, dict(os.environ), log_dir)
    service.url = f"http://127.0.0.1:{port}"
    wait_http(service, "/health")
    return service


def post_many(url: str, template: str, count: int, concurrency: int) -> dict[str, int]:
    """POST ``count`` bodies from ``template`` (fresh ids of :data:`WRK_ID_LENGTH` characters)
    to ``url``/receive, ``concurrency`` at a time; the count of each HTTP status (or error)."""
    from concurrent.futures import ThreadPoolExecutor

    tag = uuid.uuid4().hex[:10]
    head, _, tail = template.partition(EVENT_ID_PLACEHOLDER)

    def post(number: int) -> str:
        event_id = f"{tag}-0-{number:08d}"
        body = (head + event_id + tail).encode()
        try:
            answer = requests.post(
                f"{url}/receive",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=600,
            )
        except requests.RequestException as exc:
            return type(exc).__name__
        return str(answer.status_code)

    counts: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for status in pool.map(post, range(count)):
            counts[status] = counts.get(status, 0) + 1
    return counts
