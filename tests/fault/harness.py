"""The dispatcher as real processes for fault tests: data, events, workers, web servers, /proc.

Everything a test needs to drive a worker or a web server from the outside and to look at what
they did: the private data folder and events that name its files (sha1 and size computed from
the files, so the hashes always match), process start/stop/kill, HTTP helpers with bounded waits,
and resource readings of the worker processes from ``/proc``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from workers import SERVICE_ENTRY, worker_command

from pacifica.dispatcher_proxymod import states, store
from pacifica.dispatcher_proxymod.settings import Settings, load_settings
from pacifica.dispatcher_proxymod.states import TaskStatus

from .services import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DATA = ROOT / "examples" / "data"
EXAMPLE_EVENT = ROOT / "examples" / "event.json"
SLOW_TRANSFER_WORKER = Path(__file__).with_name("slow_transfer_worker.py")

FINAL_PREFIXES = ("200", "422", "500")

#: A model with one configuration: sleeps PROJECT.runtime, may fail, advances one year.
FAULT_MODEL = '''"""One proxymod model for the fault tests: one config, one year."""

from proxymod.model import Prox


def fault_model(config_1: str) -> None:
    """Sleep ``runtime`` seconds (fail if ``failure = 1``), then advance 2010 once."""
    model = Prox(config_1, "fault_model", target_yr=2010)
    model.advance()
    model.close()
'''

#: Key/values the slow-transfer worker reads (ignored by the dispatcher: not ``proxymod.*``).
TRANSFER_DELAY_KEY = "fault.transfer_delay"
TRANSIENT_FAILURES_KEY = "fault.transient_failures"


@dataclass(frozen=True)
class ModelConfig:
    """The PROJECT values of one proxymod configuration."""

    runtime: int = 0
    failure: int = 0


class FaultData:
    """A private copy of ``examples/data`` (plus ``models/fault_model.py``) and its events."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(EXAMPLE_DATA, root)
        (root / "models" / "fault_model.py").write_text(FAULT_MODEL)
        self._template: dict[str, Any] = json.loads(EXAMPLE_EVENT.read_text())

    def file_entry(self, file_id: int, subdir: str, name: str, mimetype: str) -> dict[str, Any]:
        """A ``Files`` entry whose size and sha1 are those of the file in this folder."""
        content = (self.root / subdir / name).read_bytes()
        return {
            "_id": file_id,
            "ctime": "2026-11-27T12:00:00",
            "destinationTable": "Files",
            "hashsum": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
            "hashtype": "sha1",
            "mimetype": mimetype,
            "mtime": "2026-11-27T12:00:00",
            "name": name,
            "size": len(content),
            "subdir": subdir,
        }

    def event(
        self,
        event_id: str,
        configs: Sequence[ModelConfig] = (ModelConfig(),),
        model: str = "fault_model.py",
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The example event with one model file, these configs and extra key/values."""
        event: dict[str, Any] = json.loads(json.dumps(self._template))
        data = [
            entry
            for entry in event["data"]
            if entry["destinationTable"] not in ("TransactionKeyValue", "Files")
        ]
        pairs = [
            ("proxymod.task", "advance"),
            ("proxymod.version", "v0.0.1"),
            ("proxymod.configs_count", str(len(configs))),
        ]
        for number, config in enumerate(configs, start=1):
            prefix = f"proxymod.config_{number}"
            pairs += [
                (f"{prefix}.PROJECT.runtime", str(config.runtime)),
                (f"{prefix}.PROJECT.failure", str(config.failure)),
                (f"{prefix}.INPUTS.in_dir", "inputs"),
                (f"{prefix}.INPUTS.in_file_one", "in_file_one.csv"),
                (f"{prefix}.INPUTS.in_file_two", "in_file_two.csv"),
                (f"{prefix}.OUTPUTS.out_dir", "outputs"),
            ]
        pairs += list((extra or {}).items())
        data += [
            {"destinationTable": "TransactionKeyValue", "key": key, "value": value}
            for key, value in pairs
        ]
        data += [
            self.file_entry(1102, "inputs", "in_file_one.csv", "text/csv"),
            self.file_entry(1103, "inputs", "in_file_two.csv", "text/csv"),
            self.file_entry(1104, "models", model, "text/x-python"),
        ]
        event["data"] = data
        event["eventID"] = event_id
        return event


@dataclass
class Dispatcher:
    """One dispatcher installation: database, broker, folders and timings, as the environment."""

    root: Path
    database_url: str
    broker_url: str
    data_dir: Path
    heartbeat: float = 0.5
    stale_after: float = 4.0
    requeue_after: float = 20.0
    recovery_interval: float = 1.0
    model_timeout: float = 60.0
    retry_backoff: float = 0.2
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def output_dir(self) -> Path:
        return self.root / "results"

    @property
    def logs(self) -> Path:
        folder = self.root / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def environment(self) -> dict[str, str]:
        """The environment of every process of this installation (settings come from it)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DISPATCHER_", "DATABASE_URL", "BROKER_URL", "BACKEND_URL"))
        }
        env.update(
            DATABASE_URL=self.database_url,
            BROKER_URL=self.broker_url,
            DISPATCHER_STATE_DIR=str(self.state_dir),
            DISPATCHER_TRANSFER="local",
            DISPATCHER_DATA_DIR=str(self.data_dir),
            DISPATCHER_OUTPUT_DIR=str(self.output_dir),
            DISPATCHER_HEARTBEAT=str(self.heartbeat),
            DISPATCHER_STALE_AFTER=str(self.stale_after),
            DISPATCHER_REQUEUE_AFTER=str(self.requeue_after),
            DISPATCHER_RECOVERY_INTERVAL=str(self.recovery_interval),
            DISPATCHER_MODEL_TIMEOUT=str(self.model_timeout),
            DISPATCHER_RETRY_BACKOFF=str(self.retry_backoff),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def settings(self) -> Settings:
        """The settings every process of this installation reads."""
        return load_settings(self.environment())

    def open_store(self) -> None:
        """Open the task store in the test process (to look at the rows)."""
        store.open_database(self.settings())

    def result_folders(self) -> list[Path]:
        """The delivered result folders (each has a ``.delivery.json`` beside it)."""
        if not self.output_dir.exists():
            return []
        return sorted(p for p in self.output_dir.iterdir() if p.is_dir())


# --------------------------------------------------------------------------- processes


class Worker:
    """A real Celery worker (``python -m pacifica.dispatcher_proxymod worker``), own group."""

    def __init__(
        self, dispatcher: Dispatcher, name: str, concurrency: int = 1, slow_transfer: bool = False
    ) -> None:
        self.log = dispatcher.logs / f"worker-{name}.log"
        entry = [str(SLOW_TRANSFER_WORKER)] if slow_transfer else SERVICE_ENTRY
        command = worker_command(f"fault-{name}", concurrency, entry)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                env=dispatcher.environment(),
                cwd=dispatcher.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until Celery says the worker is ready to consume."""
        wait_until(
            lambda: self._check_alive() and b"ready." in self.log.read_bytes(),
            timeout,
            f"worker ready ({self.tail()})",
        )

    def _check_alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}: {self.tail()}")
        return True

    def tail(self, size: int = 3000) -> str:
        """The end of the worker's log."""
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def pool_pids(self) -> list[int]:
        """The pids of the main process and its pool processes (not the model sandboxes)."""
        main_cmdline = read_cmdline(self.pid)
        return [self.pid] + [pid for pid in children(self.pid) if read_cmdline(pid) == main_cmdline]

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool processes at once)."""
        if self.process.poll() is None:
            with _suppress_lookup():
                os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM (Celery's warm shutdown) and wait for the exit; its return code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not exit {timeout:g} s after SIGTERM") from None

    def stop(self) -> None:
        """Stop it whatever state it is in (for fixture teardown)."""
        if self.process.poll() is None:
            with contextlib.suppress(AssertionError):
                self.terminate(timeout=60)
        with _suppress_lookup():
            os.killpg(self.pid, signal.SIGKILL)


class Web:
    """The web server (``python -m pacifica.dispatcher_proxymod --port P``) in its own group."""

    def __init__(self, dispatcher: Dispatcher, name: str = "web") -> None:
        self.port: int = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = dispatcher.logs / f"{name}.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pacifica.dispatcher_proxymod",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=dispatcher.environment(),
                cwd=dispatcher.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._answers, 60, f"web server on port {self.port}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"web exited with {self.process.returncode}: {self.tail()}")
        if "ENGINE Bus STARTED" not in self.tail(100_000):
            return False  # a signal before this would find the server half started
        try:
            requests.get(f"{self.url}/status/x", timeout=2)
            return True
        except requests.ConnectionError:
            return False

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with _suppress_lookup():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError | PermissionError)


# --------------------------------------------------------------------------- HTTP


def post_event(url: str, event: Mapping[str, Any], timeout: float = 30) -> requests.Response:
    """POST a CloudEvents 0.1 JSON event to ``/receive``."""
    return requests.post(f"{url}/receive", json=event, timeout=timeout)


def accepted_id(answer: requests.Response) -> str:
    """The task id of a 202 answer (AssertionError with the body otherwise)."""
    assert answer.status_code == 202, f"{answer.status_code}: {answer.text}"
    task_id: str = answer.json()["taskID"]
    return task_id


# --------------------------------------------------------------------------- the store


def task_row(task_id: str) -> store.Task:
    """The task row (the store must be open in this process)."""
    task = store.get_task(task_id)
    assert task is not None, f"no task {task_id}"
    return task


def wait_final(task_id: str, timeout: float, what: str = "") -> store.Task:
    """Wait (bounded) until the task's row has a final status; the row."""

    def final() -> store.Task | None:
        try:
            task = store.get_task(task_id)
        except Exception:  # the database may be down on purpose; try again
            return None
        return task if task is not None and task.task_status.final else None

    return wait_until(final, timeout, f"task {task_id} to end {what}", every=0.25)


def wait_all_final(task_ids: Sequence[str], timeout: float, what: str = "") -> list[store.Task]:
    """Wait (bounded) until every task has ended; the rows in the given order."""
    wanted = set(task_ids)

    def done() -> bool:
        try:
            with store.connection():
                rows = store.Task.select(store.Task.id, store.Task.status).where(
                    store.Task.id.in_(list(wanted))
                )
                return all(states.TaskStatus(row.status).final for row in rows) and len(
                    list(rows)
                ) == len(wanted)
        except Exception:  # the database may be down on purpose
            return False

    try:
        wait_until(done, timeout, f"{len(wanted)} tasks to end {what}", every=0.5)
    except AssertionError:
        counts = store.count_by_status()
        raise AssertionError(f"tasks not final after {timeout:g} s {what}: {counts}") from None
    return [task_row(task_id) for task_id in task_ids]


def recorded_ids() -> list[str]:
    """The id of every task in the store."""
    with store.connection():
        return [row.id for row in store.Task.select(store.Task.id)]


def all_completed_by_new_worker(
    dispatcher: Dispatcher,
    processes: list[Worker | Web],
    name: str,
    task_ids: Sequence[str],
    timeout: float = 240,
    concurrency: int = 1,
) -> list[store.Task]:
    """Start a worker (stopped with ``processes``), wait until the tasks end, check each is
    ``200 OK``; the rows in the given order."""
    worker = Worker(dispatcher, name, concurrency=concurrency)
    processes.append(worker)
    tasks = wait_all_final(task_ids, timeout, f"(worker {name})")
    assert {task.task_status for task in tasks} == {TaskStatus.OK}, worker.tail()
    return tasks


# --------------------------------------------------------------------------- /proc


def read_cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` ([] once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            text = Path(f"/proc/{pid}/task/{thread}/children").read_text()
        except OSError:
            continue
        found += [int(part) for part in text.split()]
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` holds open."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def all_pids() -> Iterator[int]:
    """Every process id on the machine."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def model_pids(task_id: str) -> list[int]:
    """Processes running a model of ``task_id`` (sandbox runner, bwrap or setpriv wrapper)."""
    found = []
    for pid in all_pids():
        cmdline = read_cmdline(pid)
        if any("run_model.py" in part for part in cmdline) and any(
            task_id in part for part in cmdline
        ):
            found.append(pid)
    return found


def model_runner_pids(task_id: str) -> list[int]:
    """Only the Python processes that run a model of ``task_id`` (not bwrap or setpriv)."""
    return [
        pid
        for pid in model_pids(task_id)
        if (cmd := read_cmdline(pid)) and "python" in Path(cmd[0]).name
    ]
