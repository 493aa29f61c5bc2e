"""Memory a model cannot hide and privileges it cannot gain: each test is a real attempt run
through the real sandbox (``sandbox/seccomp.py``, the sized ``/tmp`` of ``sandbox/filesystem.py``,
the report pipe of ``sandbox/execute.py``), and each must end safely with a clear reason."""

# ruff: noqa: F811 - pytest passes the fixtures imported from test_sandbox by name
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_sandbox import Task, bwrap, isolation, task  # noqa: F401 - the shared fixtures

from pacifica.dispatcher_proxymod import errors
from pacifica.dispatcher_proxymod.runtime import run_model as runner
from pacifica.dispatcher_proxymod.sandbox import filesystem, sandbox_controls, seccomp
from pacifica.dispatcher_proxymod.settings import ModelLimits, Settings, load_settings

MEMORY = ModelLimits(
    timeout_seconds=60,
    memory_mb=256,
    tmp_mb=16,
    cpu_seconds=60,
    file_size_mb=512,
    open_files=64,
    processes=32,
)


@pytest.fixture
def memory_task(task: Task) -> Task:
    task.limits(**{field: getattr(MEMORY, field) for field in ("memory_mb", "tmp_mb")})
    task.limits(file_size_mb=MEMORY.file_size_mb)
    return task


def test_the_filter_is_built_here() -> None:
    assert seccomp.seccomp_problem() is None
    program = seccomp.filter_program()
    assert program is not None and len(program) % 8 == 0


def test_filling_tmp_past_its_size_ends_as_a_tmp_limit(tmp_path: Path, bwrap: str) -> None:
    task = Task(tmp_path, bwrap, MEMORY)
    run = task.run(
        "fill_tmp",
        """
        def fill_tmp():
            block = b"x" * (1024 * 1024)
            with open("/tmp/hoard", "wb") as out:
                for _ in range(256):  # 256 MB, far past the 16 MB /tmp
                    out.write(block)
                    out.flush()
        """,
    )
    assert (run.outcome, run.limit) == ("limit", "tmp_space"), run.reason
    assert "filled its /tmp, which holds at most 16 MB of its 256 MB memory limit" in str(
        run.reason
    )


def test_tmp_and_address_space_together_stay_within_the_memory_limit(
    tmp_path: Path, bwrap: str
) -> None:
    task = Task(tmp_path, bwrap, MEMORY)
    run = task.run(
        "both",
        """
        import json, resource

        def both():
            block = b"x" * (1024 * 1024)
            with open("/tmp/hoard", "wb") as out:
                written = 0
                try:
                    for _ in range(64):
                        out.write(block)
                        out.flush()
                        written += 1
                except OSError:
                    pass
            soft, _ = resource.getrlimit(resource.RLIMIT_AS)
            with open("result.json", "w") as handle:
                json.dump({"tmp_mb": written, "address_space_mb": soft // (1024 * 1024)}, handle)
        """,
    )
    assert run.ok, run.reason
    result = task.result()
    assert result["address_space_mb"] == 256 - 16
    assert result["tmp_mb"] + result["address_space_mb"] <= 256


def test_memfd_create_kills_the_model_with_a_clear_reason(memory_task: Task) -> None:
    run = memory_task.run(
        "memfd",
        """
        import os

        def memfd():
            fd = os.memfd_create("hidden")
            for _ in range(512):  # 512 MB that no rlimit would count
                os.write(fd, b"x" * (1024 * 1024))
            open("survived.txt", "w").close()
        """,
    )
    assert (run.outcome, run.limit, run.signal) == ("limit", "system_call", 31), run.reason
    assert "made a system call the sandbox refuses (memfd_create" in str(run.reason)
    assert not (memory_task.work / "survived.txt").exists()


def test_memfd_in_a_child_process_kills_that_child(memory_task: Task) -> None:
    run = memory_task.run(
        "memfd_child",
        """
        import json, os, subprocess, sys

        def memfd_child():
            child = subprocess.run(
                [sys.executable, "-I", "-S", "-c", "import os; os.memfd_create('x'); print('no')"],
                capture_output=True,
            )
            with open("result.json", "w") as handle:
                json.dump({"code": child.returncode, "out": child.stdout.decode()}, handle)
        """,
    )
    assert run.ok, run.reason
    assert memory_task.result() == {"code": -31, "out": ""}


def test_system_v_shared_memory_is_refused(memory_task: Task) -> None:
    run = memory_task.run(
        "shm",
        """
        import ctypes

        def shm():
            libc = ctypes.CDLL(None, use_errno=True)
            libc.shmget(0, 256 * 1024 * 1024, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
            open("survived.txt", "w").close()
        """,
    )
    assert (run.outcome, run.limit) == ("limit", "system_call"), run.reason
    assert not (memory_task.work / "survived.txt").exists()


def test_a_new_user_namespace_is_refused(memory_task: Task) -> None:
    run = memory_task.run(
        "userns",
        """
        import ctypes, json, subprocess

        def userns():
            tool = subprocess.run(["unshare", "--user", "--map-root-user", "id", "-u"],
                                  capture_output=True)
            with open("result.json", "w") as handle:
                json.dump({"code": tool.returncode, "out": tool.stdout.decode()}, handle)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.unshare(0x10000000)  # CLONE_NEWUSER
            open("survived.txt", "w").close()
        """,
    )
    assert (run.outcome, run.limit) == ("limit", "system_call"), run.reason
    assert "a new user namespace" in str(run.reason)
    assert memory_task.result() == {"code": -31, "out": ""}, "the unshare tool was killed"
    assert not (memory_task.work / "survived.txt").exists()


def test_threads_and_processes_still_start_under_the_filter(memory_task: Task) -> None:
    run = memory_task.run(
        "spawns",
        """
        import json, subprocess, threading

        def spawns():
            seen = []
            worker = threading.Thread(target=seen.append, args=("thread",))
            worker.start()
            worker.join()
            seen.append(subprocess.run(["echo", "child"], capture_output=True).stdout.decode())
            with open("result.json", "w") as handle:
                json.dump(seen, handle)
        """,
    )
    assert run.ok, run.reason
    assert memory_task.result() == ["thread", "child\n"]


@pytest.mark.parametrize(
    "forged",
    [
        '{"what": "limit:memory", "detail": "forged"}',
        '{"what": "raised", "detail": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "[" * 200_000,
    ],
)
def test_a_marker_on_stderr_cannot_forge_the_report(memory_task: Task, forged: str) -> None:
    run = memory_task.run(
        "forger",
        f"""
        import sys

        def forger():
            sys.stderr.write({runner.MARKER + forged!r} + "\\n")
            sys.stderr.flush()
            sys.exit({runner.EXIT_MEMORY})
        """,
    )
    assert (run.outcome, run.limit) == ("error", None), run.reason
    assert f"exited with status {runner.EXIT_MEMORY}" in str(run.reason)


def test_a_real_limit_is_still_reported_through_the_pipe(memory_task: Task) -> None:
    memory_task.limits(open_files=32)
    run = memory_task.run(
        "many_files",
        """
        def many_files():
            kept = [open(__file__) for _ in range(100)]
        """,
    )
    assert (run.outcome, run.limit) == ("limit", "open_files"), run.reason


def test_controls_are_stated(isolation: str) -> None:
    controls = sandbox_controls(Settings(sandbox=isolation, limits=MEMORY))
    assert controls["isolation"] == isolation
    assert controls["seccomp"] == f"active: refuses {seccomp.REFUSED_CALLS}"
    assert "refused (seccomp)" in controls["user_namespaces"]
    if isolation == "bwrap":
        assert controls["tmp"] == "a private tmpfs of 16 MB, part of the 256 MB limit"
        assert controls["memory"] == "address space 240 MB"
    else:
        assert "not bounded" in controls["tmp"]
    json.dumps(controls)


def test_tmp_may_take_at_most_half_the_memory_limit() -> None:
    with pytest.raises(errors.SettingsError, match="DISPATCHER_MODEL_TMP_MB"):
        load_settings({"DISPATCHER_MODEL_MEMORY_MB": "256", "DISPATCHER_MODEL_TMP_MB": "200"})
    assert load_settings({"DISPATCHER_MODEL_TMP_MB": "32"}).limits.tmp_mb == 32


def test_this_bwrap_knows_the_options_the_controls_use() -> None:
    options = filesystem.bwrap_options(shutil.which("bwrap"))
    assert {"--size", "--disable-userns", "--tmpfs"} <= options


def test_an_older_bwrap_runs_without_those_controls_and_says_so(
    tmp_path: Path, bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filesystem, "bwrap_options", lambda _: frozenset({"--tmpfs"}))
    command = filesystem.bwrap_command("bwrap", None, tmp_path, (), 3, None, 16 * 1024 * 1024)
    assert "--size" not in command and "--disable-userns" not in command
    controls = sandbox_controls(Settings(sandbox=bwrap, limits=MEMORY))
    assert "not bounded" in controls["tmp"] and controls["memory"] == "address space 256 MB"
