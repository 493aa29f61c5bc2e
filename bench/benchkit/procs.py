"""Processes a benchmark starts (the dispatcher, its ceilings, workers), stopped at its exit."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from .base import BENCH, PYTHON, BenchError

#: The embedded servers the dispatcher can run under (``cheroot``: bench/cheroot_dispatcher.py).
SERVERS = ("waitress", "cheroot")
#: Servers measured only when asked for (``--servers``): granian is not a dependency.
OPTIONAL_SERVERS = ("granian",)


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

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

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
    log = log_dir / f"{name.replace('/', '-')}.log"
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


def start_web(
    name: str, env: Mapping[str, str], log_dir: Path, server: str = "waitress", python: str = ""
) -> Service:
    """The dispatcher's web server on a free port: the console script's default command
    (waitress), or the same under cheroot (bench/cheroot_dispatcher.py) or granian
    (bench/granian_dispatcher.py); ``python`` another
    install's interpreter (default: this checkout's .venv)."""
    port = free_port()
    python = python or PYTHON
    if server == "waitress":
        command = [python, "-m", "pacifica.dispatcher_proxymod"]
    elif server in SERVERS + OPTIONAL_SERVERS:
        command = [python, str(BENCH / f"{server}_dispatcher.py")]
    else:
        known = ", ".join(SERVERS + OPTIONAL_SERVERS)
        raise BenchError(f"unknown server {server!r}: one of {known}")
    service = start(name, [*command, "--host", "127.0.0.1", "--port", str(port)], env, log_dir)
    service.url = f"http://127.0.0.1:{port}"
    wait_http(service, "/health")
    return service


#: The bare app's name under cheroot (the ceiling); under another server it is ``floor/<server>``.
CEILING = "ceiling"
FLOOR_PREFIX = "floor/"


def is_bare_app(name: str) -> bool:
    """Whether a target named ``name`` is the bare app (ceiling or floor), not the dispatcher."""
    return name == CEILING or name.startswith(FLOOR_PREFIX)


def start_ceiling(log_dir: Path, threads: int = 16, server: str = "cheroot") -> Service:
    """The bare app (``bench/ceiling.py``) with as many threads as the dispatcher: under
    cheroot the ceiling; under ``server`` (waitress, granian) that server's floor."""
    port = free_port()
    command = [PYTHON, str(BENCH / "ceiling.py"), "--port", str(port), "--threads", str(threads)]
    name = CEILING if server == "cheroot" else f"{FLOOR_PREFIX}{server}"
    service = start(name, [*command, "--server", server], dict(os.environ), log_dir)
    service.url = f"http://127.0.0.1:{port}"
    wait_http(service, "/")
    return service


def start_cherrypy_floor(log_dir: Path) -> Service:
    """CherryPy configured as the dispatcher, doing nothing (``bench/cherrypy_floor.py``)."""
    port = free_port()
    command = [PYTHON, str(BENCH / "cherrypy_floor.py"), "--port", str(port)]
    service = start("cherrypy-floor", command, dict(os.environ), log_dir)
    service.url = f"http://127.0.0.1:{port}"
    wait_http(service, "/health")
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
            shutil.rmtree(folder, ignore_errors=True)
