"""Fixtures for the integration tests: the real Pacifica stack, and our service running against it.

The stack is the one ``tests/integration/stack/pacifica_stack.py up`` runs (endpoints in its
``stack.json``), probed before use and started when CI needs it (tests/pacifica_stack_finder.py).
Without it the tests are skipped with the reason, except under ``CI=true`` with
``DISPATCHER_INTEGRATION=1``, where that is a failure.

The service is the real thing: the web app over HTTP on 127.0.0.1 and a Celery worker in its
own process with ``DISPATCHER_TRANSFER=pacifica``, configured through the environment in
pacifica-cli's variable names. The worker reaches Cartd and Ingest through
:class:`SwitchableProxy` instances, so a test can make them unreachable and bring them back.
Events reach the service only through a Notifications subscription that our ``subscribe``
command registers, narrowed to this run's uploads (a unique TransactionKeyValue) because other
people share the stack; it is deleted at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from pacifica_stack_finder import find_stack

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.settings import Settings, load_settings
from pacifica.dispatcher_proxymod.subscribe import NotificationsClient, find_one, unsubscribe
from pacifica.dispatcher_proxymod.web import create_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: The TransactionKeyValue that ties an upload to one test run.
RUN_KEY = "dispatcher_test.run"
#: Upper bounds of the waits (generous: the machine is shared and loaded).
INGEST_TIMEOUT = 180.0
EVENT_TIMEOUT = 120.0
TASK_TIMEOUT = 300.0


# --------------------------------------------------------------------------- the stack


@pytest.fixture(scope="session")
def stack() -> dict[str, Any]:
    """The stack's ``stack.json``, once it is known to answer (started if CI needs it)."""
    return find_stack()


def pacifica_cli_env(
    stack: Mapping[str, Any], download_url: str, ingest_url: str
) -> dict[str, str]:
    """The Pacifica endpoints in pacifica-cli's variable names."""
    return {
        "UPLOAD_URL": f"{ingest_url}/upload",
        "UPLOAD_STATUS_URL": f"{ingest_url}/get_state",
        "UPLOAD_POLICY_URL": stack["upload_policy_url"],
        "UPLOAD_VALIDATION_URL": stack["upload_validation_url"],
        "DOWNLOAD_URL": download_url,
        "DOWNLOAD_POLICY_URL": stack["download_policy_url"],
        "AUTHENTICATION_TYPE": "None",
        "PACIFICA_CLI_CONFIG": str(ROOT / "no-pacifica-cli-config.ini"),  # absent on purpose
    }


# --------------------------------------------------------------------------- a switchable proxy


class SwitchableProxy:
    """A TCP forwarder on a loopback port; :meth:`off` makes the port refuse connections."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self) -> None:
        """Listen again on the same port and forward every connection."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            listener.settimeout(0.2)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        """Stop listening (new connections are refused) and cut the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._open = self._open, set()
        if listener is not None:
            listener.close()
        for conn in connections:
            _close(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                _close(conn)
            with self._lock:
                self._open.difference_update((source, sink))


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def _host_port(url: str) -> tuple[str, int]:
    parsed = requests.utils.urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


# --------------------------------------------------------------------------- uploads and Metadata


def example_key_values() -> dict[str, str]:
    """The proxymod key/values of ``examples/event.json``, in order."""
    event = json.loads((EXAMPLES / "event.json").read_text())
    return {
        entry["key"]: str(entry["value"])
        for entry in event["data"]
        if entry.get("destinationTable") == "TransactionKeyValue"
    }


def example_files() -> dict[str, Path]:
    """Bundle path (``inputs/...``, ``models/...``) -> file of the example data set."""
    data = EXAMPLES / "data"
    return {
        path.relative_to(data).as_posix(): path
        for path in sorted(data.rglob("*"))
        if path.is_file()
    }


@dataclass
class Uploaded:
    """One upload through Ingest: its transaction, and when it started and was ingested."""

    transaction: int
    started: float  # time.time()
    ingested: float


def upload_dataset(
    stack: Mapping[str, Any],
    key_values: Mapping[str, str],
    files: Mapping[str, Path],
    folder: Path,
) -> Uploaded:
    """Bundle ``files`` with the stack's Transactions.* and ``key_values``, upload, wait for OK."""
    from pacifica.uploader import Uploader
    from pacifica.uploader.bundler import Bundler
    from pacifica.uploader.metadata import MetaData, MetaObj

    objects = [
        MetaObj(destinationTable="Transactions.submitter", value=stack["submitter"]),
        MetaObj(destinationTable="Transactions.project", value=stack["project"]),
        MetaObj(destinationTable="Transactions.instrument", value=stack["instrument"]),
    ]
    objects += [
        MetaObj(destinationTable="TransactionKeyValue", key=key, value=value)
        for key, value in key_values.items()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    bundle = folder / f"bundle-{uuid.uuid4().hex}.tar"
    handles = {name: path.open("rb") for name, path in files.items()}
    try:
        file_data = [
            {
                "name": f"data/{name}",
                "size": files[name].stat().st_size,
                "mtime": files[name].stat().st_mtime,
                "fileobj": handle,
            }
            for name, handle in handles.items()
        ]
        with bundle.open("wb") as out:
            Bundler(MetaData(objects), file_data).stream(out)
    finally:
        for handle in handles.values():
            handle.close()
    uploader = Uploader(upload_url=stack["upload_url"], status_url=stack["upload_status_url"])
    started = time.time()
    with bundle.open("rb") as stream:
        job = int(uploader.upload(stream, content_length=bundle.stat().st_size))
    deadline = time.monotonic() + INGEST_TIMEOUT
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = uploader.getstate(job)
        if state.get("state") == "FAILED":
            raise AssertionError(f"Ingest job {job} failed: {state}")
        if (
            state.get("state") == "OK"
            and state.get("task") == "ingest metadata"
            and float(state.get("task_percent", 0)) >= 100
        ):
            return Uploaded(job, started, time.time())
        time.sleep(0.1)
    raise AssertionError(f"Ingest job {job} not done within {INGEST_TIMEOUT} s: {state}")


def transaction_info(stack: Mapping[str, Any], transaction: int) -> dict[str, Any]:
    """Metadata's description of a transaction (files, key_values)."""
    answer = requests.get(
        f"{stack['metadata_url']}/transactioninfo/by_id/{transaction}", timeout=30
    )
    answer.raise_for_status()
    info: dict[str, Any] = answer.json()
    return info


def linked_transactions(stack: Mapping[str, Any], transaction: int) -> list[int]:
    """Transactions whose TransactionKeyValue ``Transactions._id`` is ``transaction``."""
    metadata = stack["metadata_url"]
    keys = requests.get(f"{metadata}/keys", params={"key": "Transactions._id"}, timeout=30).json()
    values = requests.get(f"{metadata}/values", params={"value": str(transaction)}, timeout=30)
    linked: set[int] = set()
    for key in keys:
        for value in values.json():
            rows = requests.get(
                f"{metadata}/trans_key_value",
                params={"key": key["_id"], "value": value["_id"]},
                timeout=30,
            ).json()
            linked.update(int(row["transaction"]) for row in rows)
    return sorted(linked)


def download_transaction(
    stack: Mapping[str, Any], transaction: int, wanted: set[str] | None = None
) -> dict[str, bytes]:
    """Files of ``transaction`` (``subdir/name``; all, or those in ``wanted``) through Cartd.

    One cart per file, one at a time: the stack's archiveinterface shares one file handle
    between its request threads, so a cart whose files Cartd stages in parallel can break
    (the cart then stays "staging"); a broken cart is tried again.
    """
    info = transaction_info(stack, transaction)
    found: dict[str, bytes] = {}
    for file_id, entry in info["files"].items():
        path = f"{entry['subdir'].strip('/')}/{entry['name']}".lstrip("/")
        if wanted is None or path in wanted:
            found[path] = _cart_one_file(stack["cartd_url"], int(file_id), entry)
    missing = (wanted or set()) - set(found)
    assert not missing, f"transaction {transaction} lacks {sorted(missing)}"
    return found


def _cart_one_file(cartd: str, file_id: int, entry: Mapping[str, Any]) -> bytes:
    """One file through its own Cartd cart (three tries, each bounded)."""
    problems = []
    for _ in range(3):
        cart_url = f"{cartd.rstrip('/')}/{uuid.uuid4()}"
        request = {
            "fileids": [
                {
                    "id": file_id,
                    "path": "f",
                    "hashtype": entry["hashtype"],
                    "hashsum": entry["hashsum"],
                }
            ]
        }
        made = requests.post(cart_url, json=request, timeout=30)
        assert made.status_code == 201, made.text
        try:
            deadline = time.monotonic() + 30
            status = "unknown"
            while time.monotonic() < deadline:
                head = requests.head(cart_url, timeout=30)
                status = head.headers.get("X-Pacifica-Status", "unknown")
                if status in ("ready", "error") or head.status_code >= 500:
                    break
                time.sleep(0.1)
            if status != "ready":
                problems.append(f"cart {cart_url} {status}")
                continue
            with requests.get(
                cart_url, params={"filename": "data"}, stream=True, timeout=60
            ) as answer:
                answer.raise_for_status()
                with tarfile.open(fileobj=answer.raw, mode="r|") as archive:
                    for member in archive:
                        if member.isfile() and member.name.endswith("/f"):
                            source = archive.extractfile(member)
                            assert source is not None
                            return source.read()
            problems.append(f"cart {cart_url} holds no file")
        finally:
            requests.delete(cart_url, timeout=30)
    raise AssertionError(f"Cartd gave no copy of file {file_id}: {problems}")


# --------------------------------------------------------------------------- our service


def parse_time(text: str | None) -> float | None:
    """One of our records' timestamps (``...Z``, UTC) as seconds since the epoch."""
    if not text:
        return None
    return datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=UTC).timestamp()


@dataclass
class Service:
    """Our service as the tests see it, and what it needs to check outcomes."""

    url: str
    settings: Settings
    env: dict[str, str]
    log: Path
    marker: str
    subscription_name: str
    stack: dict[str, Any]
    cartd: SwitchableProxy
    ingest: SwitchableProxy
    workdir: Path
    timings: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, tuple[Uploaded, dict[str, Any]]] = field(default_factory=dict)

    @property
    def auth(self) -> tuple[str, str]:
        return self.settings.auth_username or "", self.settings.auth_password or ""

    def key_values(self, **changes: str) -> dict[str, str]:
        """The example key/values, tagged with this run, with ``changes`` (``__`` for ``.``)."""
        values = example_key_values()
        for key, value in changes.items():
            values[key.replace("__", ".")] = value
        values[RUN_KEY] = self.marker
        return values

    def task_for(self, transaction: int, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        """The task created by the event of ``transaction`` (waits for the delivery)."""
        event_id = f"metadata.ingest.{transaction}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.read("/", size=1000)["tasks"]
            found = [task for task in tasks if task["eventID"] == event_id]
            if found:
                assert len(found) == 1, found
                return found[0]
            time.sleep(0.1)
        raise AssertionError(
            f"no task for {event_id} within {timeout} s; subscription: {self.subscription()}"
        )

    def tasks_for(self, transaction: int) -> list[dict[str, Any]]:
        """Every task recorded for the event of ``transaction`` (no wait)."""
        event_id = f"metadata.ingest.{transaction}"
        tasks = self.read("/", size=1000)["tasks"]
        return [task for task in tasks if task["eventID"] == event_id]

    def read(self, path: str, **params: Any) -> Any:
        """GET one of our API's documents (it needs the same credentials as /receive)."""
        answer = requests.get(self.url + path, params=params, auth=self.auth, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def record(self, task_id: str) -> dict[str, Any]:
        record: dict[str, Any] = self.read(f"/get/{task_id}")
        return record

    def wait_final(self, task_id: str, timeout: float = TASK_TIMEOUT) -> dict[str, Any]:
        """The task's record once its status is final (bounded)."""
        deadline = time.monotonic() + timeout
        record = self.record(task_id)
        while time.monotonic() < deadline:
            record = self.record(task_id)
            if record["status"].split()[0] in ("200", "422", "500"):
                return record
            time.sleep(0.2)
        raise AssertionError(
            f"task {task_id} still {record['status']!r} after {timeout} s\n"
            + self.log.read_text(errors="replace")[-4000:]
        )

    def subscription(self) -> Any:
        """Our subscription as Notifications reports it now."""
        client = NotificationsClient(
            self.stack["notifications_url"],
            self.stack["network_id"],
            self.stack["notifications_user_header"],
        )
        return find_one(client, self.subscription_name)

    def subscribe_command(self, *options: str) -> subprocess.CompletedProcess[str]:
        """Run ``pacifica-dispatcher-proxymod subscribe`` for our subscription."""
        command = [
            sys.executable,
            "-m",
            "pacifica.dispatcher_proxymod",
            "subscribe",
            f"--notifications-url={self.stack['notifications_url']}",
            f"--user={self.stack['network_id']}",
            f"--user-header={self.stack['notifications_user_header']}",
            f"--name={self.subscription_name}",
            *options,
        ]
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )

    def note_timings(self, label: str, uploaded: Uploaded, record: Mapping[str, Any]) -> None:
        """Record the stages of one run (seconds) for the summary printed at the end.

        Our records are UTC; Ingest's job times are the stack's local time, as is this process's.
        ``started`` is the start of the last attempt.
        """
        created = parse_time(record.get("created"))
        started = parse_time(record.get("started"))
        finished = parse_time(record.get("finished"))
        result = record.get("result", {}).get("transaction")
        row: dict[str, Any] = {
            "scenario": label,
            "input_transaction": uploaded.transaction,
            "result_transaction": result,
            "status": record.get("status"),
            "attempts": record.get("attempts"),
            "upload_to_ingested": _span(uploaded.started, uploaded.ingested),
            "ingested_to_event": _span(uploaded.ingested, created),
            "event_to_start": _span(created, started),
            "run_incl_transfers": _span(started, finished),
        }
        if result:
            job = requests.get(
                self.stack["upload_status_url"], params={"job_id": result}, timeout=30
            ).json()
            received = datetime.fromisoformat(job["created"]).timestamp()
            ingested = datetime.fromisoformat(job["updated"]).timestamp()
            row["start_to_result_upload"] = _span(started, received)
            row["result_upload_to_linked_transaction"] = _span(received, ingested)
            row["linked_transaction_to_finished"] = _span(ingested, finished)
        self.timings.append(row)


def _span(start: float | None, end: float | None) -> float | None:
    return round(end - start, 2) if start is not None and end is not None else None


def _worker_command(name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pacifica.dispatcher_proxymod",
        "worker",
        "--concurrency",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        name,
    ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def service(stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Web app + worker against the stack, subscribed through our ``subscribe`` command."""
    from httpserver import serving

    workdir = tmp_path_factory.mktemp("pacifica-e2e")
    cartd = SwitchableProxy(*_host_port(stack["cartd_url"]))
    ingest = SwitchableProxy(*_host_port(stack["ingest_url"]))
    cartd.on()
    ingest.on()
    marker = uuid.uuid4().hex
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DISPATCHER_", "DATABASE_URL", "BROKER_URL", "BACKEND_URL"))
    }
    env.update(pacifica_cli_env(stack, cartd.url, ingest.url))
    env.update(
        DATABASE_URL=os.environ.get("TEST_DATABASE_URL")
        or f"sqlite:///{workdir / 'tasks.sqlite3'}",
        BROKER_URL=os.environ.get("TEST_BROKER_URL") or "filesystem://",
        DISPATCHER_STATE_DIR=str(workdir / "state"),
        DISPATCHER_TRANSFER="pacifica",
        DISPATCHER_AUTH="basic",
        DISPATCHER_AUTH_USERNAME="notifications",
        DISPATCHER_AUTH_PASSWORD=uuid.uuid4().hex,
        DISPATCHER_TRANSFER_RETRIES="3",
        DISPATCHER_RETRY_BACKOFF="0.5",
        DISPATCHER_REQUEST_TIMEOUT="20",
        DISPATCHER_CART_TIMEOUT="120",
        DISPATCHER_INGEST_TIMEOUT="120",
        DISPATCHER_HEARTBEAT="0.5",
        DISPATCHER_STALE_AFTER="30",
        DISPATCHER_RECOVERY_INTERVAL="2",
        DISPATCHER_MODEL_TIMEOUT="120",
        DISPATCHER_KEEP_WORK="on-failure",
    )
    settings = load_settings(env)
    store.open_database(settings)
    with store.connection():
        store.Task.delete().execute()
    log = workdir / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            _worker_command(f"pacifica-e2e-{marker[:8]}@%h"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    name = f"pacifica-dispatcher-proxymod-test-{marker}"
    client = NotificationsClient(
        stack["notifications_url"], stack["network_id"], stack["notifications_user_header"]
    )
    try:
        with serving(create_app(settings)) as url:
            running = Service(url, settings, env, log, marker, name, stack, cartd, ingest, workdir)
            done = running.subscribe_command(
                f"--target-url={url}/receive", f"--require={RUN_KEY}={marker}"
            )
            assert done.returncode == 0, done.stderr + done.stdout
            assert done.stdout.startswith("created: "), done.stdout
            yield running
            _print_timings(running.timings, workdir)
    finally:
        unsubscribe(client, name)
        _stop(worker)
        store.close_database()
        cartd.off()
        ingest.off()


def _print_timings(rows: list[dict[str, Any]], workdir: Path) -> None:
    if not rows:
        return
    (workdir / "timings.json").write_text(json.dumps(rows, indent=2))
    print("\n== Pacifica end-to-end timings (seconds) and transactions")
    for row in rows:
        print("  " + json.dumps(row))
