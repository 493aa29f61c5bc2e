"""Hostile models through the whole handler: download, sandbox, guard, manifest, upload.

Each test puts a misbehaving model file beside the example inputs in a private data folder,
builds the ingest event for it the way ``pack`` does, and runs
``proxymod.handler.handle`` with the local transfer, as a worker would. What the model tries and
what must hold afterwards is in each test. ``tests/test_sandbox.py`` covers the sandbox on its
own (files of the service, writes outside, environment, limits, PID namespace); these tests add
what only the whole path shows.

Tests that need bubblewrap skip with the reason when it does not work here, except when ``CI`` is
``"true"``: there they fail.
"""

# ruff: noqa: F811 - pytest passes the fixture imported from test_sandbox by name
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import socket
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_DATA
from test_sandbox import isolation, processes_mentioning, require_bwrap  # noqa: F401 - a fixture

from pacifica.dispatcher_proxymod.errors import UnprocessableEvent
from pacifica.dispatcher_proxymod.events import Event, parse_http
from pacifica.dispatcher_proxymod.proxymod.handler import HandlerResult, handle, task_dir
from pacifica.dispatcher_proxymod.settings import ModelLimits, Settings
from pacifica.dispatcher_proxymod.transfer.local import DELIVERY_SUFFIX, LocalTransfer

TRANSACTION_ID = 4242
LIMITS = ModelLimits(
    timeout_seconds=60, memory_mb=512, cpu_seconds=60, file_size_mb=16, open_files=64, processes=32
)
CONFIG = {
    "PROJECT.runtime": "0",
    "PROJECT.failure": "0",
    "INPUTS.in_dir": "inputs",
    "INPUTS.in_file_one": "in_file_one.csv",
    "INPUTS.in_file_two": "in_file_two.csv",
    "OUTPUTS.out_dir": "outputs",
}


def _file_entry(data_dir: Path, file_id: int, subdir: str, name: str, mimetype: str) -> Any:
    content = (data_dir / subdir / name).read_bytes()
    return {
        "_id": file_id,
        "destinationTable": "Files",
        "hashsum": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
        "hashtype": "sha1",
        "mimetype": mimetype,
        "name": name,
        "size": len(content),
        "subdir": subdir,
        "mtime": "2026-11-27T12:00:00",
        "ctime": "2026-11-27T12:00:00",
    }


def ingest_event(data_dir: Path, models: list[str]) -> Event:
    """The ingest event of the two example inputs and ``models`` (files in data_dir/models)."""
    data: list[dict[str, Any]] = [
        {"destinationTable": "Transactions.submitter", "value": 10},
        {"destinationTable": "Transactions.project", "value": "1234a"},
        {"destinationTable": "Transactions.instrument", "value": 54},
        {"destinationTable": "TransactionKeyValue", "key": "proxymod.configs_count", "value": "1"},
    ]
    data += [
        {"destinationTable": "TransactionKeyValue", "key": f"proxymod.config_1.{key}", "value": v}
        for key, v in CONFIG.items()
    ]
    files = [("inputs", "in_file_one.csv", "text/csv"), ("inputs", "in_file_two.csv", "text/csv")]
    files += [("models", f"{name}.py", "text/x-python") for name in models]
    data += [_file_entry(data_dir, 100 + i, *spec) for i, spec in enumerate(files)]
    data.append({"destinationTable": "Transactions._id", "value": TRANSACTION_ID})
    document = {
        "cloudEventsVersion": "0.1",
        "eventType": "org.pacifica.metadata.ingest",
        "source": f"http://metadata.pacifica.org/transactions?_id={TRANSACTION_ID}",
        "eventID": f"escape-{uuid.uuid4().hex}",
        "eventTime": "2026-11-27T12:00:05",
        "extensions": {},
        "contentType": "application/json",
        "data": data,
    }
    return parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())


class Hostile:
    """A data folder holding hostile models, the settings of a worker, and its outputs."""

    def __init__(self, root: Path, settings: Settings, isolation: str) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir()
        (self.data / "inputs").mkdir()
        for name in ("in_file_one.csv", "in_file_two.csv"):
            (self.data / "inputs" / name).write_bytes((EXAMPLE_DATA / "inputs" / name).read_bytes())
        (self.data / "models").mkdir()
        self.output = root / "results"
        self.task_id = str(uuid.uuid4())
        self.settings = settings.with_changes(
            sandbox=isolation,
            limits=LIMITS,
            data_dir=self.data,
            output_dir=self.output,
            keep_work="always",
        )
        # A secret of the host, outside every task: no model may read it or get it uploaded.
        self.secret_value = f"host-secret-{uuid.uuid4().hex}"
        self.secret = root / "host-secret.txt"
        self.secret.write_text(self.secret_value)
        # Another task's work directory, as a concurrent task would have it.
        self.other_task = task_dir(self.settings, str(uuid.uuid4()))
        self.other_task.mkdir(parents=True)
        (self.other_task / "result").mkdir()
        (self.other_task / "result" / "stdout.log").write_text(self.secret_value)

    @property
    def work(self) -> Path:
        return task_dir(self.settings, self.task_id)

    @property
    def result_dir(self) -> Path:
        return self.work / "sandbox" / "result"

    def limits(self, **changes: Any) -> None:
        limits = dataclasses.replace(self.settings.limits, **changes)
        self.settings = self.settings.with_changes(limits=limits)

    def model(self, name: str, source: str) -> None:
        (self.data / "models" / f"{name}.py").write_text(textwrap.dedent(source))

    def run(self, *models: str) -> HandlerResult:
        event = ingest_event(self.data, list(models))
        transfer = LocalTransfer(self.settings.data_dir, self.settings.output_dir)
        return handle(event, self.task_id, self.settings, transfer)

    def delivered(self, result: HandlerResult) -> Path:
        assert result.delivery is not None
        return Path(result.delivery.location)

    def delivered_files(self, result: HandlerResult) -> dict[str, bytes]:
        """Every file (and the description beside it) of the delivery, by relative path."""
        folder = self.delivered(result)
        found: dict[str, bytes] = {}
        for path in sorted(folder.rglob("*")):
            assert not path.is_symlink(), f"a symbolic link was delivered: {path}"
            if path.is_file():
                found[path.relative_to(folder).as_posix()] = path.read_bytes()
        description = folder.with_name(folder.name + DELIVERY_SUFFIX)
        found[description.name] = description.read_bytes()
        return found

    def everything_written(self) -> bytes:
        """All bytes under the output folder and the task's work directory."""
        blob = b""
        for folder in (self.output, self.work):
            for path in sorted(folder.rglob("*")) if folder.exists() else []:
                if path.is_file() and not path.is_symlink():
                    blob += path.read_bytes()
        return blob


@pytest.fixture
def hostile(tmp_path: Path, settings: Settings, isolation: str) -> Hostile:
    """Hostile models under both isolations (for what the worker, not the sandbox, must hold)."""
    return Hostile(tmp_path, settings, isolation)


@pytest.fixture
def jailed(tmp_path: Path, settings: Settings) -> Hostile:
    """Hostile models under bubblewrap only."""
    require_bwrap()
    return Hostile(tmp_path, settings, "bwrap")


def _waits_for_a_fifo_partner(thread: threading.Thread) -> bool:
    """True while ``thread`` is blocked opening a FIFO that nobody opened the other end of."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/wchan") as handle:
            return handle.read().strip() == "wait_for_partner"
    except OSError:
        return False


def _run_outcomes(result: HandlerResult) -> list[tuple[str, str]]:
    return [(run.model, run.outcome) for run in result.models]


# ----------------------------------------------------------------------------- processes


#: Ways a model leaves a process behind that writes after the model has returned.
_LEAVERS = {
    # a grandchild in its own session, detached from everything
    "new-session": """
            subprocess.Popen(LINGERER, start_new_session=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    """,
    # the classic daemon: fork, setsid, fork again, the middle process exits at once
    "double-fork": """
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv(sys.executable, LINGERER)
                os._exit(0)
            time.sleep(0.5)  # the daemon is on its own by now
    """,
}


@pytest.mark.parametrize("leaver", sorted(_LEAVERS))
@pytest.mark.parametrize("mode", ["bwrap", "process"])
def test_child_that_outlives_its_model_is_gone_after_the_run(
    tmp_path: Path, settings: Settings, mode: str, leaver: str
) -> None:
    if mode == "bwrap":
        require_bwrap()
    hostile = Hostile(tmp_path, settings, mode)
    token = f"lingerer-{uuid.uuid4().hex}"
    late = hostile.result_dir / "outputs" / "late.txt"
    write_late = "import sys, time; time.sleep(3); open(sys.argv[1], 'w').write('late')"
    hostile.model(
        "spawner",
        f"""
        import os, subprocess, sys, time

        LINGERER = [sys.executable, "-c", {write_late!r}, {str(late)!r}, "{token}"]

        def spawner(config):
            os.makedirs("result/outputs", exist_ok=True)
            {textwrap.dedent(_LEAVERS[leaver]).strip().replace(chr(10), chr(10) + " " * 12)}
        """,
    )
    result = hostile.run("spawner")
    try:
        assert _run_outcomes(result) == [("spawner", "ok")], result.failure
        assert processes_mentioning(token) == []  # so nothing can write it later
        assert processes_mentioning(str(hostile.work)) == []
        assert not late.exists()
        assert "outputs/late.txt" not in hostile.delivered_files(result)
    finally:
        for pid in processes_mentioning(token):  # a failed test leaves nothing running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_fork_bomb_ends_with_a_limit_and_leaves_nothing(jailed: Hostile) -> None:
    jailed.limits(processes=16, timeout_seconds=60)
    jailed.model(
        "bomb",
        """
        import os

        def bomb(config):
            while True:
                os.fork()
        """,
    )
    result = jailed.run("bomb")
    assert len(result.models) == 1
    run = result.models[0]
    assert (run.outcome, run.limit) == ("limit", "processes"), run.reason
    assert result.failure is not None and "exceeded the limit of 16 processes" in result.failure
    assert processes_mentioning(str(jailed.work)) == []
    manifest = json.loads(jailed.delivered_files(result)["manifest.json"])
    assert manifest["status"] == "failed"
    assert manifest["runs"][0]["limit"] == "processes"


# ----------------------------------------------------------------------------- /proc and files


def test_proc_shows_nothing_of_the_host_or_other_tasks(
    jailed: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCHER_ESCAPE_SECRET", jailed.secret_value)
    worker_pid = os.getpid()
    jailed.model(
        "snooper",
        f"""
        import json, os

        def read(path):
            try:
                with open(path, "rb") as handle:
                    return handle.read().decode("utf-8", "replace")
            except OSError as exc:
                return type(exc).__name__

        def snooper(config):
            seen = {{}}
            for path in ["/proc/1/environ", "/proc/1/cmdline", "/proc/{worker_pid}/environ",
                         "/proc/{worker_pid}/cmdline", "/proc/self/environ",
                         "/proc/self/mountinfo", "/proc/mounts", {str(jailed.secret)!r},
                         {str(jailed.other_task / "result" / "stdout.log")!r}]:
                seen[path] = read(path)
            pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
            seen["pids"] = pids
            seen["environs"] = {{pid: read("/proc/" + pid + "/environ") for pid in pids}}
            seen["other task"] = os.path.exists({str(jailed.other_task)!r})
            seen["work parent"] = sorted(os.listdir(os.path.dirname(os.getcwd())))
            seen["task parent"] = sorted(os.listdir(os.path.dirname(os.path.dirname(os.getcwd()))))
            os.makedirs("result/outputs", exist_ok=True)
            with open("result/outputs/seen.json", "w") as handle:
                json.dump(seen, handle)
        """,
    )
    result = jailed.run("snooper")
    assert _run_outcomes(result) == [("snooper", "ok")], result.failure
    files = jailed.delivered_files(result)
    seen = json.loads(files["outputs/seen.json"])
    secret = jailed.secret_value
    assert all(secret.encode() not in content for content in files.values())
    assert secret not in json.dumps(seen)
    assert seen[str(jailed.secret)] == "FileNotFoundError"
    assert seen[str(jailed.other_task / "result" / "stdout.log")] == "FileNotFoundError"
    assert seen["other task"] is False
    assert seen["work parent"] == ["sandbox"]  # not the task's service/ folder (the logs)
    assert seen["task parent"] == [jailed.task_id]  # no other task's folder
    assert str(jailed.other_task) not in seen["/proc/self/mountinfo"]
    assert len(seen["pids"]) < 5  # the sandbox's own PID namespace
    host_cmdline = Path(f"/proc/{worker_pid}/cmdline").read_text()
    assert seen[f"/proc/{worker_pid}/cmdline"] != host_cmdline
    for environ in [seen["/proc/1/environ"], *seen["environs"].values()]:
        assert "DISPATCHER_" not in environ and "DATABASE_URL" not in environ


# ----------------------------------------------------------------------------- what is uploaded


def test_symlinks_in_the_output_are_never_followed(hostile: Hostile) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    secret_dir = hostile.secret.parent
    hostile.model(
        "linker",
        f"""
        import os

        def linker(config):
            os.makedirs("result/outputs/nested", exist_ok=True)
            os.symlink("/etc/passwd", "result/outputs/passwd.csv")
            os.symlink({str(hostile.secret)!r}, "result/outputs/secret.csv")
            os.symlink({str(secret_dir)!r}, "result/outputs/host_dir")
            os.symlink("../../../../..", "result/outputs/nested/up")
            try:  # a hard link cannot cross into the work dir's mount; try anyway
                os.link({str(hostile.secret)!r}, "result/outputs/hard.csv")
            except OSError:
                pass
            with open("result/outputs/real.csv", "w") as handle:
                handle.write("year,value\\n2010,1.0\\n")
        """,
    )
    result = hostile.run("linker")
    assert _run_outcomes(result) == [("linker", "ok")], result.failure
    files = hostile.delivered_files(result)
    assert files["outputs/real.csv"] == b"year,value\n2010,1.0\n"
    for name in files:
        assert not name.startswith(("outputs/passwd", "outputs/secret", "outputs/host_dir"))
        assert not name.startswith("outputs/nested/up")
    secret = hostile.secret_value.encode()
    assert all(secret not in content for content in files.values())
    if hostile.settings.sandbox == "bwrap":
        assert all(passwd not in content for content in files.values())
    if hostile.settings.sandbox == "bwrap":  # a process-isolated model may read it itself
        assert secret not in hostile.everything_written()
    manifest = json.loads(files["manifest.json"])
    links = {entry["path"] for entry in manifest["outputs"] if entry.get("skipped") == "link"}
    assert {"outputs/passwd.csv", "outputs/secret.csv", "outputs/host_dir"} <= links
    delivered = json.loads(files[hostile.delivered(result).name + DELIVERY_SUFFIX])
    names = {entry.get("name") for entry in delivered["metadata"]}
    assert "passwd.csv" not in names and "secret.csv" not in names


def test_replaced_result_dir_is_refused_and_nothing_written_through_it(
    hostile: Hostile,
) -> None:
    target = hostile.root / "planted-target"
    target.mkdir()
    hostile.model(
        "swapper",
        f"""
        import os, shutil

        def swapper(config):
            shutil.rmtree("result")
            os.symlink({str(target)!r}, "result")
        """,
    )
    hostile.model("second", "def second(config):\n    print('second ran')\n")
    with pytest.raises(UnprocessableEvent, match="replaced the result directory"):
        hostile.run("swapper", "second")
    assert list(target.iterdir()) == []  # no log, manifest or output went through the link
    assert not hostile.output.exists() or list(hostile.output.iterdir()) == []


def test_planted_log_and_manifest_links_are_not_written_through(hostile: Hostile) -> None:
    victim = hostile.root / "victim.txt"
    victim.write_text("original")
    hostile.model(
        "planter",
        f"""
        import os

        def planter(config):
            for name in ("stdout.log", "manifest.json"):
                path = os.path.join("result", name)
                if os.path.lexists(path):
                    os.remove(path)
                os.symlink({str(victim)!r}, path)
        """,
    )
    hostile.model("talker", "def talker(config):\n    print('talker ran')\n")
    result = hostile.run("planter", "talker")
    assert _run_outcomes(result) == [("planter", "ok"), ("talker", "ok")], result.failure
    assert victim.read_text() == "original"
    files = hostile.delivered_files(result)
    assert b"talker ran" in files["stdout.log"]
    manifest = json.loads(files["manifest.json"])
    assert [run["model"] for run in manifest["runs"]] == ["planter", "talker"]


def test_planted_stderr_link_does_not_leak_a_host_file(hostile: Hostile) -> None:
    hostile.model(
        "leaker",
        f"""
        import os

        def leaker(config):
            os.symlink({str(hostile.secret)!r}, "result/stderr.log")
            os._exit(3)
        """,
    )
    result = hostile.run("leaker")
    assert result.failure is not None and "status 3" in result.failure
    assert hostile.secret_value not in result.failure
    files = hostile.delivered_files(result)
    assert all(hostile.secret_value.encode() not in content for content in files.values())


def test_planted_stderr_fifo_does_not_block_the_worker(hostile: Hostile) -> None:
    hostile.model(
        "blocker",
        """
        import os

        def blocker(config):
            os.mkfifo("result/stderr.log")
        """,
    )
    outcome: list[HandlerResult | BaseException] = []

    def work() -> None:
        try:
            outcome.append(hostile.run("blocker"))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    blocked = False
    while worker.is_alive() and not blocked:
        worker.join(timeout=0.2)
        blocked = _waits_for_a_fifo_partner(worker)
    fifo = hostile.result_dir / "stderr.log"
    while worker.is_alive():  # unblock the worker: open the FIFO's other end
        with contextlib.suppress(OSError):
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        worker.join(timeout=1)
    assert not blocked, "the worker blocked on a FIFO the model planted"
    assert outcome and isinstance(outcome[0], HandlerResult), outcome


def test_planted_manifest_after_the_last_model_is_not_written_through(hostile: Hostile) -> None:
    victim = hostile.root / "victim.json"
    victim.write_text("original")
    hostile.model(
        "last",
        f"""
        import os

        def last(config):
            os.symlink({str(victim)!r}, "result/manifest.json")
            os.symlink({str(victim)!r}, "result/stdout.log")
        """,
    )
    result = hostile.run("last")
    assert _run_outcomes(result) == [("last", "ok")], result.failure
    assert victim.read_text() == "original"
    manifest = json.loads(hostile.delivered_files(result)["manifest.json"])
    assert manifest["task"] == hostile.task_id


def test_tampered_inputs_and_models_do_not_leak_into_the_manifest(hostile: Hostile) -> None:
    hostile.model(
        "tamperer",
        f"""
        import glob, os

        def tamperer(config):
            for path in glob.glob("files/**/*.csv", recursive=True) + [__file__]:
                os.remove(path)
                os.symlink({str(hostile.secret)!r}, path)
        """,
    )
    result = hostile.run("tamperer")
    assert _run_outcomes(result) == [("tamperer", "ok")], result.failure
    files = hostile.delivered_files(result)
    assert all(hostile.secret_value.encode() not in content for content in files.values())
    manifest = json.loads(files["manifest.json"])
    secret_size = len(hostile.secret_value)
    for entry in manifest["inputs"] + manifest["models"]:
        assert entry["size"] != secret_size, entry  # the link itself, never its target


def test_many_output_files_end_with_a_clear_outcome(hostile: Hostile) -> None:
    """Below DISPATCHER_MAX_OUTPUT_FILES, every file is delivered and the manifest lists them."""
    count = 3000
    hostile.model(
        "scatter",
        f"""
        import os

        def scatter(config):
            for index in range({count}):
                folder = "result/outputs/%02d" % (index % 30)
                os.makedirs(folder, exist_ok=True)
                with open(folder + "/file_%05d.csv" % index, "w") as handle:
                    handle.write(str(index))
        """,
    )
    result = hostile.run("scatter")
    assert _run_outcomes(result) == [("scatter", "ok")], result.failure
    files = hostile.delivered_files(result)
    written = [name for name in files if name.startswith("outputs/")]
    assert len(written) == count
    manifest = json.loads(files["manifest.json"])
    assert len(
        [entry for entry in manifest["outputs"] if entry["path"].startswith("outputs/")]
    ) == (count)


def test_endless_file_creation_is_stopped_by_the_timeout(hostile: Hostile) -> None:
    hostile.limits(timeout_seconds=3)
    hostile.model(
        "flood",
        """
        import os

        def flood(config):
            os.makedirs("result/outputs", exist_ok=True)
            index = 0
            while True:
                open("result/outputs/f%d" % index, "w").close()
                index += 1
        """,
    )
    result = hostile.run("flood")
    run = result.models[0]
    assert run.outcome == "timeout", run.reason
    assert result.failure is not None
    assert result.failure.startswith("model flood: timed out after 3 s (killed)")
    if "DISPATCHER_MAX_OUTPUT_FILES" in result.failure:  # a fast machine wrote more than that
        assert result.failure.endswith("none of them is delivered")
    manifest = json.loads(hostile.delivered_files(result)["manifest.json"])
    assert manifest["status"] == "failed"
    assert processes_mentioning(str(hostile.work)) == []


def test_huge_output_file_is_cut_at_the_file_size_limit(hostile: Hostile) -> None:
    hostile.limits(file_size_mb=2)
    hostile.model(
        "filler",
        """
        import os

        def filler(config):
            os.makedirs("result/outputs", exist_ok=True)
            with open("result/outputs/big.bin", "wb") as handle:
                while True:
                    handle.write(b"x" * 65536)
        """,
    )
    result = hostile.run("filler")
    run = result.models[0]
    assert (run.outcome, run.limit) == ("limit", "file_size"), run.reason
    files = hostile.delivered_files(result)
    assert len(files["outputs/big.bin"]) <= 2 * 1024 * 1024


# ----------------------------------------------------------------------------- network


@pytest.fixture
def listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP listener and a UDP socket (a stand-in DNS server) on 127.0.0.1."""
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(8)
        tcp.setblocking(False)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        with socket.create_connection(tcp.getsockname(), timeout=5):
            pass  # both really answer from the host
        tcp.accept()[0].close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.sendto(b"probe", udp.getsockname())
        assert udp.recv(64) == b"probe"
        yield tcp, udp


def test_network_is_closed_to_models(
    jailed: Hostile, listeners: tuple[socket.socket, socket.socket]
) -> None:
    tcp, udp = listeners
    tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    jailed.model(
        "caller",
        f"""
        import json, os, socket

        def attempt(action):
            try:
                return "succeeded: %r" % (action(),)
            except OSError as exc:
                return type(exc).__name__

        def caller(config):
            seen = {{
                "tcp": attempt(lambda: socket.create_connection(("127.0.0.1", {tcp_port}),
                                                                timeout=5).close()),
                "udp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                               .sendto(b"dns?", ("127.0.0.1", {udp_port}))),
                "dns": attempt(lambda: socket.getaddrinfo("pypi.org", 443)),
                "dns localhost": attempt(lambda: socket.getaddrinfo("localhost", {tcp_port})),
                "resolv.conf": os.path.exists("/etc/resolv.conf"),
                "interfaces": [name for _, name in socket.if_nameindex()],
            }}
            os.makedirs("result/outputs", exist_ok=True)
            with open("result/outputs/net.json", "w") as handle:
                json.dump(seen, handle)
        """,
    )
    result = jailed.run("caller")
    assert _run_outcomes(result) == [("caller", "ok")], result.failure
    seen = json.loads(jailed.delivered_files(result)["outputs/net.json"])
    # The sandbox has a loopback of its own: what it sends there stays there.
    assert seen["tcp"] == "ConnectionRefusedError", seen
    assert seen["dns"] == "gaierror", seen
    assert seen["resolv.conf"] is False
    assert seen["interfaces"] == ["lo"]
    with pytest.raises(BlockingIOError):
        tcp.accept()  # nothing connected
    with pytest.raises(BlockingIOError):
        udp.recv(64)  # nothing arrived
