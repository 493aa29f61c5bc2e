"""Tests of the sandbox package and runtime/run_model.py: every model really runs and misbehaves.

Tests that need bubblewrap skip with the reason when it does not work here, except when the
environment variable ``CI`` is ``"true"``: there they fail, so CI never passes without the sandbox.
Behaviour that both isolations share runs under both.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pacifica.dispatcher_proxymod import errors
from pacifica.dispatcher_proxymod.runtime import RUNTIME_DIR
from pacifica.dispatcher_proxymod.runtime import run_model as run_model_script
from pacifica.dispatcher_proxymod.sandbox import ModelRun, probe, run_model, sandbox_status, verdict
from pacifica.dispatcher_proxymod.settings import ModelLimits, Settings

# Generous where a test does not measure time, so a loaded machine cannot make them flaky.
LIMITS = ModelLimits(
    timeout_seconds=60, memory_mb=512, cpu_seconds=60, file_size_mb=16, open_files=64, processes=32
)


def bwrap_problem() -> str | None:
    """Why the bwrap sandbox cannot be tested here (None when it can)."""
    try:
        sandbox_status(Settings(sandbox="bwrap"))
    except errors.SandboxUnavailable as exc:
        return str(exc)
    return None


def require_bwrap() -> None:
    problem = bwrap_problem()
    if problem is None:
        return
    message = f"bubblewrap is not usable here: {problem}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the sandbox is required)")
    pytest.skip(message)


@pytest.fixture(params=["bwrap", "process"])
def isolation(request: pytest.FixtureRequest) -> str:
    """Both isolations, for behaviour they share."""
    mode: str = request.param
    if mode == "bwrap":
        require_bwrap()
    return mode


@pytest.fixture
def bwrap() -> str:
    """The bwrap isolation only."""
    require_bwrap()
    return "bwrap"


class Task:
    """A task's work directory among others, the logs outside it, as the handler lays it out."""

    def __init__(self, root: Path, isolation: str, limits: ModelLimits = LIMITS) -> None:
        self.root = root
        self.work = root / "tasks" / "task-1"
        (self.work / "models").mkdir(parents=True)
        self.other_task = root / "tasks" / "task-2"
        self.other_task.mkdir(parents=True)
        (self.other_task / "data.txt").write_text("another task's data")
        self.logs = root / "logs"
        self.logs.mkdir()
        self.stdout = self.logs / "stdout.log"
        self.stderr = self.logs / "stderr.log"
        self.settings = Settings(sandbox=isolation, limits=limits)

    def limits(self, **changes: Any) -> None:
        limits = dataclasses.replace(self.settings.limits, **changes)
        self.settings = self.settings.with_changes(limits=limits)

    def ini(self, name: str, text: str = "[PROJECT]\nruntime = 0\n") -> Path:
        path = self.work / name
        path.write_text(text)
        return path

    def run(self, name: str, source: str, inis: list[Path] | None = None) -> ModelRun:
        model = self.work / "models" / f"{name}.py"
        model.write_text(textwrap.dedent(source))
        return run_model(model, inis or [], self.work, self.stdout, self.stderr, self.settings)

    def result(self, name: str = "result.json") -> Any:
        return json.loads((self.work / name).read_text())


@pytest.fixture
def task(tmp_path: Path, isolation: str) -> Task:
    return Task(tmp_path, isolation)


@pytest.fixture
def bwrap_task(tmp_path: Path, bwrap: str) -> Task:
    return Task(tmp_path, bwrap)


def processes_mentioning(token: str) -> list[int]:
    """Host pids whose command line contains ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if token.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


# ----------------------------------------------------------------------------- running fine


def test_model_runs_and_writes_its_work_dir(task: Task) -> None:
    first = task.ini("config_1.ini")
    second = task.ini("config_2.ini")
    source = """
        import os, sys

        def writer(config_1, config_2):
            assert isinstance(config_1, str) and isinstance(config_2, str)
            os.makedirs("outputs/writer_outputs")
            with open("outputs/writer_outputs/result.txt", "w") as handle:
                handle.write(open(config_1).read() + config_2)
            print("writer wrote", os.getcwd())
            print("writer warned", file=sys.stderr)
        """
    run = task.run("writer", source, [first, second])
    assert run.outcome == "ok", run.reason
    assert (run.exit_code, run.signal, run.limit, run.reason) == (0, None, None, None)
    assert run.isolation == task.settings.sandbox
    assert run.model == "writer"
    assert run.started <= run.ended
    result = task.work / "outputs" / "writer_outputs" / "result.txt"
    assert result.read_text() == "[PROJECT]\nruntime = 0\n" + str(second)
    assert result.stat().st_uid == os.geteuid()  # given back after the run
    assert task.stdout.read_text() == f"writer wrote {task.work}\n"
    assert task.stderr.read_text() == "writer warned\n"

    # A second model of the same task appends to the same logs.
    again = task.run("again", "def again():\n    print('again ran')\n")
    assert again.ok, again.reason
    assert task.stdout.read_text() == f"writer wrote {task.work}\nagain ran\n"


def test_proxymod_runtime_is_importable_and_works(task: Task) -> None:
    inputs = task.work / "inputs"
    inputs.mkdir()
    for name in ("one.csv", "two.csv"):
        (inputs / name).write_text("year,value\n2010,16.0\n2015,4.0\n")
    config = task.ini(
        "config_1.ini",
        f"[PROJECT]\nruntime = 0\nfailure = 0\n[INPUTS]\nin_dir = {inputs}\n"
        f"in_file_one = one.csv\nin_file_two = two.csv\n[OUTPUTS]\nout_dir = {task.work / 'out'}\n",
    )
    source = """
        import proxymod
        from proxymod.model import Prox

        def uses_prox(config):
            model = Prox(config, "uses_prox", target_yr=2010)
            model.advance()
            model.close()
            print("proxymod from", proxymod.__file__)
        """
    run = task.run("uses_prox", source, [config])
    assert run.ok, run.reason
    assert f"proxymod from {RUNTIME_DIR / 'proxymod' / '__init__.py'}" in task.stdout.read_text()
    outputs = sorted(path.name for path in (task.work / "out").rglob("output*.csv"))
    assert outputs == ["output1_uses_prox_2010.csv", "output2_uses_prox_2010.csv"]
    written = next((task.work / "out").rglob("output1_uses_prox_2010.csv")).read_text()
    assert written == "year,value\n2010,4.0\n"  # only the target year is kept


def test_model_json_record(task: Task) -> None:
    run = task.run("quiet", "def quiet():\n    pass\n")
    document = run.to_json()
    assert document["model"] == "quiet"
    assert document["outcome"] == "ok"
    assert document["isolation"] == task.settings.sandbox
    assert document["started"] == run.started.isoformat()
    assert document["duration_seconds"] >= 0
    assert json.loads(json.dumps(document)) == document


# ----------------------------------------------------------------------------- failing safely


def test_raising_model_names_the_exception(task: Task) -> None:
    run = task.run("divider", "def divider():\n    return 1 / 0\n")
    assert run.outcome == "error"
    assert run.reason == (
        "model divider: raised ZeroDivisionError: division by zero "
        "at models/divider.py, line 2, in divider: `return 1 / 0`"
    )
    assert run.exit_code == run_model_script.EXIT_RAISED
    logged = task.stderr.read_text()
    assert "Traceback (most recent call last)" in logged
    assert "run_model" not in logged.split("[run_model]")[0]  # no runner frame
    assert run.traceback == (
        "Traceback (most recent call last):\n"
        '  File "models/divider.py", line 2, in divider\n'
        "    return 1 / 0\n"
        "           ~~^~~\n"
        "ZeroDivisionError: division by zero\n"
    )
    assert run.to_json()["traceback"] == run.traceback


def test_a_failure_in_proxymod_names_the_user_s_line(task: Task) -> None:
    source = (
        "from proxymod.model import Prox\n"
        "\n"
        "def deep(config_1=None):\n"
        "    step()\n"
        "\n"
        "def step():\n"
        "    Prox('/nowhere/config.ini', 'deep', target_yr=2010)\n"
    )
    run = task.run("deep", source)
    assert run.outcome == "error" and run.reason is not None
    assert run.reason.endswith(
        "at models/deep.py, line 7, in step: `Prox('/nowhere/config.ini', 'deep', target_yr=2010)`"
    )
    assert run.traceback is not None
    assert 'File "models/deep.py", line 4, in deep' in run.traceback
    assert "frame(s) in proxymod, the runtime the models import" in run.traceback
    assert "run_model.py" not in run.traceback and "importlib" not in run.traceback


def test_model_failing_at_import(task: Task) -> None:
    run = task.run("broken", "def broken(:\n")
    assert run.outcome == "error"
    assert run.reason is not None
    assert run.reason.startswith("model broken: failed to import: SyntaxError")
    assert "at models/broken.py, line 1: `def broken(:`" in run.reason


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def other():\n    pass\n", "model absent: absent.py defines no callable named 'absent'"),
        ("absent = 3\n", "model absent: 'absent' in absent.py is a int, not callable"),
    ],
)
def test_missing_callable(task: Task, source: str, expected: str) -> None:
    run = task.run("absent", source)
    assert run.outcome == "error"
    assert run.reason == expected
    assert run.exit_code == run_model_script.EXIT_NO_CALLABLE


def test_os_exit_status_is_reported(task: Task) -> None:
    run = task.run("quitter", "import os\n\ndef quitter():\n    os._exit(7)\n")
    assert (run.outcome, run.exit_code, run.signal) == ("error", 7, None)
    assert run.reason == "model quitter: exited with status 7"


def test_sys_exit_with_a_reserved_status_is_not_mistaken(task: Task) -> None:
    source = "import sys\n\ndef fake():\n    print('going', file=sys.stderr)\n    sys.exit(101)\n"
    run = task.run("fake", source)
    assert (run.outcome, run.exit_code) == ("error", 101)
    assert run.reason == "model fake: exited with status 101 (stderr: going)"


def test_a_forked_child_failing_does_not_speak_for_the_model(task: Task) -> None:
    source = """
        import os

        def parent():
            if os.fork() == 0:
                raise ValueError("the child")
            os.wait()
            raise RuntimeError("the parent")
        """
    run = task.run("parent", source)
    assert (run.outcome, run.exit_code) == ("error", run_model_script.EXIT_RAISED)
    assert run.reason is not None
    assert run.reason.startswith(
        "model parent: raised RuntimeError: the parent at models/parent.py"
    )
    markers = [
        line
        for line in task.stderr.read_text().splitlines()
        if line.startswith(run_model_script.MARKER)
    ]
    assert len(markers) == 1 and "the parent" in markers[0]


def test_the_runner_report_is_found_under_what_other_processes_wrote_after_it() -> None:
    report = run_model_script.MARKER + '{"what": "limit:processes", "detail": "BlockingIOError"}'
    tail = f"Traceback (most recent call last):\n{report}\n  os.fork()\nBlockingIOError\n"
    assert verdict.runner_report(tail) == {
        "what": "limit:processes",
        "detail": "BlockingIOError",
    }
    assert verdict.runner_report("no marker here\n") is None


def test_timeout_kills_model_and_the_child_it_left(task: Task) -> None:
    task.limits(timeout_seconds=2)
    token = f"sleeper-child-{uuid.uuid4().hex}"
    source = f"""
        import subprocess, sys, time

        def sleeper():
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", "{token}"])
            print("child started", flush=True)
            time.sleep(1000)
        """
    run = task.run("sleeper", source)
    assert run.outcome == "timeout"
    assert run.reason == "model sleeper: timed out after 2 s (killed)"
    assert run.limit is None
    assert "child started" in task.stdout.read_text()
    assert processes_mentioning(token) == []
    assert processes_mentioning(str(task.work)) == []


def test_memory_limit(task: Task) -> None:
    task.limits(memory_mb=128)
    run = task.run("hog", "def hog():\n    hoard = bytearray(1024 * 1024 * 1024)\n")
    assert (run.outcome, run.limit) == ("limit", "memory")
    assert run.reason == "model hog: exceeded the memory limit of 128 MB (MemoryError)"


def test_cpu_limit(task: Task) -> None:
    task.limits(cpu_seconds=1)
    run = task.run("burner", "def burner():\n    while True:\n        pass\n")
    assert (run.outcome, run.limit) == ("limit", "cpu")
    assert run.reason == "model burner: exceeded the CPU time limit of 1 s (killed by SIGXCPU)"
    assert run.exit_code is None
    assert run.signal is not None


def test_file_size_limit(task: Task) -> None:
    task.limits(file_size_mb=1)
    source = """
        def filler():
            with open("big.bin", "wb") as handle:
                for _ in range(8):
                    handle.write(b"x" * 1024 * 1024)
        """
    run = task.run("filler", source)
    assert (run.outcome, run.limit) == ("limit", "file_size")
    assert run.reason == (
        "model filler: exceeded the file size limit of 1 MB (OSError: [Errno 27] File too large)"
    )
    assert (task.work / "big.bin").stat().st_size <= 1024 * 1024


def test_open_files_limit(task: Task) -> None:
    task.limits(open_files=32)
    source = """
        def opener():
            kept = [open(__file__) for _ in range(100)]
        """
    run = task.run("opener", source)
    assert (run.outcome, run.limit) == ("limit", "open_files")
    assert run.reason is not None
    assert run.reason.startswith("model opener: exceeded the limit of 32 open files (OSError")


def test_service_environment_is_invisible(task: Task, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_TEST_SECRET", "hunter2-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:hunter2-secret@db/tasks")
    source = """
        import json, os

        def snoop():
            with open("result.json", "w") as handle:
                json.dump(dict(os.environ), handle)
        """
    run = task.run("snoop", source)
    assert run.ok, run.reason
    seen = task.result()
    assert "hunter2-secret" not in json.dumps(seen)
    assert set(seen) <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "HOME",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "PWD",
    }
    assert seen["HOME"] == seen["PWD"] == str(task.work)
    assert seen["PYTHONPATH"] == str(RUNTIME_DIR)


# ----------------------------------------------------------------------------- bwrap only


def test_fork_bomb_is_bounded_by_the_process_limit(bwrap_task: Task) -> None:
    bwrap_task.limits(processes=8)
    source = """
        import os, time

        def bomb():
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
        """
    run = bwrap_task.run("bomb", source)
    assert (run.outcome, run.limit) == ("limit", "processes")
    assert run.reason is not None
    assert run.reason.startswith("model bomb: exceeded the limit of 8 processes (BlockingIOError")
    assert processes_mentioning(str(bwrap_task.work)) == []


def test_model_does_not_run_as_root(bwrap_task: Task) -> None:
    source = """
        import json, os

        def who():
            status = open("/proc/self/status").read()
            caps = [line.split()[1] for line in status.splitlines() if line.startswith("Cap")]
            with open("result.json", "w") as handle:
                json.dump({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                           "groups": os.getgroups(), "caps": caps}, handle)
        """
    run = bwrap_task.run("who", source)
    assert run.ok, run.reason
    seen = bwrap_task.result()
    assert seen["uid"] != 0 and seen["euid"] != 0 and seen["gid"] != 0
    assert seen["groups"] == []
    assert set(seen["caps"]) == {"0000000000000000"}


def test_model_has_its_own_pid_namespace(bwrap_task: Task) -> None:
    source = """
        import json, os

        def pids():
            with open("result.json", "w") as handle:
                json.dump({"pid": os.getpid(), "init": open("/proc/1/cmdline").read(),
                           "visible": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())},
                          handle)
        """
    run = bwrap_task.run("pids", source)
    assert run.ok, run.reason
    seen = bwrap_task.result()
    with open("/proc/1/cmdline") as handle:
        host_init = handle.read()
    assert seen["init"] != host_init
    assert Path(seen["init"].split("\0")[0]).name == "bwrap"
    assert seen["pid"] < 10
    assert len(seen["visible"]) < 5


def test_service_files_are_invisible(bwrap_task: Task) -> None:
    secret = bwrap_task.root / "service-secret.txt"
    secret.write_text("database password")
    database = bwrap_task.root / "dispatcher.sqlite3"
    database.write_bytes(b"SQLite format 3\x00")
    targets = [
        secret,
        database,
        bwrap_task.other_task / "data.txt",
        bwrap_task.logs / "stdout.log",
        Path(sys.prefix) / "pyvenv.cfg",  # the service's virtualenv
        Path("/etc/passwd"),
        Path("/etc/hostname"),
    ]
    # Everything in /root and /home, except the folders leading to the Python installation.
    on_the_way = {str(parent) for parent in Path(sys.base_prefix).resolve().parents}
    for folder in (Path("/root"), Path("/home")):
        if folder.is_dir() and os.access(folder, os.R_OK):
            targets += [entry for entry in folder.iterdir() if str(entry) not in on_the_way]
    source = f"""
        import json, os

        def reader():
            found = {{}}
            for path in {[str(target) for target in targets]!r}:
                found[path] = os.path.exists(path)
            found["listing of task-2"] = os.path.exists({str(bwrap_task.other_task)!r})
            with open("result.json", "w") as handle:
                json.dump(found, handle)
        """
    run = bwrap_task.run("reader", source)
    assert run.ok, run.reason
    seen = bwrap_task.result()
    assert len(seen) == len(targets) + 1
    assert [path for path, exists in seen.items() if exists] == []


def test_writes_outside_the_work_dir_fail(bwrap_task: Task) -> None:
    token = uuid.uuid4().hex
    secret = bwrap_task.root / "service-secret.txt"
    secret.write_text("original")
    escapes = {
        "tmp": f"/tmp/escape-{token}",
        "parent": str(bwrap_task.work.parent / f"escape-{token}"),
        "other task": str(bwrap_task.other_task / "data.txt"),
        "secret": str(secret),
        "usr": f"/usr/escape-{token}",
        "runtime": str(RUNTIME_DIR / f"escape-{token}"),
        "etc": f"/etc/escape-{token}",
    }
    source = f"""
        import json

        def escaper():
            results = {{}}
            for label, path in {escapes!r}.items():
                try:
                    with open(path, "w") as handle:
                        handle.write("escaped")
                    results[label] = "written"
                except OSError as exc:
                    results[label] = type(exc).__name__
            with open("result.json", "w") as handle:
                json.dump(results, handle)
        """
    run = bwrap_task.run("escaper", source)
    assert run.ok, run.reason
    results = bwrap_task.result()
    # Read-only, missing or unreachable places refuse the write outright.
    for label in ("other task", "secret", "usr", "runtime", "etc"):
        assert results[label] != "written", label
    # /tmp (and the work dir's parents, when they lie in /tmp) are the sandbox's own tmpfs:
    # whatever happened there, nothing reaches the host.
    assert not Path(escapes["tmp"]).exists()
    assert not Path(escapes["parent"]).exists()
    assert not Path(escapes["usr"]).exists()
    assert not Path(escapes["runtime"]).exists()
    assert (bwrap_task.other_task / "data.txt").read_text() == "another task's data"
    assert secret.read_text() == "original"


def test_network_is_unreachable(bwrap_task: Task) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the listener really answers from here
        source = f"""
            import json, socket

            def caller():
                try:
                    socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                    result = "connected"
                except OSError as exc:
                    result = type(exc).__name__
                with open("result.json", "w") as handle:
                    json.dump(result, handle)
            """
        run = bwrap_task.run("caller", source)
    assert run.ok, run.reason
    assert bwrap_task.result() in ("ConnectionRefusedError", "OSError")


# ----------------------------------------------------------------------------- isolation modes


@pytest.fixture
def no_bwrap_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A PATH without bwrap (setpriv kept), as on a host where it is not installed."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("setpriv",):
        for folder in ("/usr/bin", "/bin"):
            if os.path.exists(f"{folder}/{tool}"):
                (tools / tool).symlink_to(f"{folder}/{tool}")
                break
    monkeypatch.setenv("PATH", str(tools))
    yield


def test_process_mode_never_uses_bwrap(tmp_path: Path) -> None:
    assert sandbox_status(Settings(sandbox="process")) == "process"
    task = Task(tmp_path, "process")
    run = task.run("plain", "def plain():\n    pass\n")
    assert (run.outcome, run.isolation) == ("ok", "process")


@pytest.mark.usefixtures("no_bwrap_on_path")
def test_bwrap_mode_refuses_to_run_without_bwrap(tmp_path: Path) -> None:
    with pytest.raises(errors.SandboxUnavailable, match="bwrap is not installed"):
        sandbox_status(Settings(sandbox="bwrap"))
    task = Task(tmp_path, "bwrap")
    with pytest.raises(errors.SandboxUnavailable):
        task.run("never", "def never():\n    open('ran', 'w')\n")
    assert not (task.work / "ran").exists()


@pytest.mark.usefixtures("no_bwrap_on_path")
def test_auto_mode_falls_back_with_one_loud_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    probe._warned.clear()
    task = Task(tmp_path, "auto")
    with caplog.at_level(logging.WARNING, logger="pacifica.dispatcher_proxymod.sandbox"):
        first = task.run("one", "def one():\n    pass\n")
        second = task.run("two", "def two():\n    pass\n")
    assert (first.isolation, second.isolation) == ("process", "process")
    assert first.ok and second.ok
    warnings = [record for record in caplog.records if "SANDBOX DEGRADED" in record.message]
    assert len(warnings) == 1
    assert "bwrap is not installed" in warnings[0].message


def test_auto_mode_uses_bwrap_when_it_works(tmp_path: Path) -> None:
    require_bwrap()
    assert sandbox_status(Settings(sandbox="auto")) == "bwrap"


def test_files_must_be_inside_the_work_dir(tmp_path: Path) -> None:
    task = Task(tmp_path, "process")
    outside = tmp_path / "outside.py"
    outside.write_text("def outside():\n    pass\n")
    with pytest.raises(ValueError, match="not inside the work directory"):
        run_model(outside, [], task.work, task.stdout, task.stderr, task.settings)


def test_missing_read_only_path_is_a_settings_error(tmp_path: Path) -> None:
    task = Task(tmp_path, "process")
    task.settings = task.settings.with_changes(sandbox_ro_paths=(str(tmp_path / "missing"),))
    with pytest.raises(errors.SettingsError, match="DISPATCHER_SANDBOX_RO_PATHS"):
        task.run("plain", "def plain():\n    pass\n")


def test_extra_read_only_path_is_visible_and_read_only(tmp_path: Path) -> None:
    require_bwrap()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "table.csv").write_text("year,value\n")
    task = Task(tmp_path, "bwrap")
    task.settings = task.settings.with_changes(sandbox_ro_paths=(str(shared),))
    source = f"""
        import json

        def looker():
            text = open({str(shared / "table.csv")!r}).read()
            try:
                open({str(shared / "new.txt")!r}, "w")
                wrote = True
            except OSError:
                wrote = False
            with open("result.json", "w") as handle:
                json.dump([text, wrote], handle)
        """
    run = task.run("looker", source)
    assert run.ok, run.reason
    assert task.result() == ["year,value\n", False]
    assert not (shared / "new.txt").exists()


def test_tmp_is_private_to_each_run(bwrap_task: Task) -> None:
    writer = "import os\n\ndef first():\n    open(os.environ['TMPDIR'] + '/left', 'w').write('x')\n"
    assert bwrap_task.run("first", writer).ok
    reader = """
        import os, json

        def second():
            with open("result.json", "w") as handle:
                json.dump(os.listdir(os.environ["TMPDIR"]), handle)
        """
    run = bwrap_task.run("second", reader)
    assert run.ok, run.reason
    assert "left" not in bwrap_task.result()
