"""One model run with a chosen isolation: its command, environment, logs and ownership of the
work directory; supervised, then judged."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .. import errors
from ..runtime import RUNTIME_DIR
from ..settings import ModelLimits, Settings
from .filesystem import interpreter
from .supervise import outer_prefix, reaping_orphans, supervise, supervise_bwrap
from .verdict import ModelRun, judge, stderr_tail

#: The model's uid (and gid) when the service runs as root is this plus the service's pid.
SANDBOX_UID_BASE = 2_000_000_000

#: The model's ``PATH``.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def execute(
    model: Path,
    inis: Sequence[Path],
    work: Path,
    stdout_path: Path,
    stderr_path: Path,
    settings: Settings,
    isolation: str,
) -> ModelRun:
    """Start, supervise and judge one run with the given isolation."""
    name = model.stem
    limits = settings.limits
    command = _runner_command(model, name, inis, work, limits)
    environment = _environment(work)
    sandbox_uid = SANDBOX_UID_BASE + os.getpid() if isolation == "bwrap" and is_root() else None
    started = datetime.now(UTC)
    with _open_log(stdout_path) as stdout, _open_log(stderr_path) as stderr:
        stderr_start = os.fstat(stderr.fileno()).st_size
        if isolation == "bwrap":
            if sandbox_uid is not None:
                hand_over(work, sandbox_uid, sandbox_uid)
            try:
                outcome = supervise_bwrap(
                    command, environment, work, stdout, stderr, settings, sandbox_uid
                )
            finally:
                if sandbox_uid is not None:
                    hand_over(work, os.geteuid(), os.getegid())
        else:
            with reaping_orphans():  # bwrap's PID namespace does this for the other branch
                outcome = supervise(
                    outer_prefix() + command,
                    environment,
                    work,
                    stdout,
                    stderr,
                    limits,
                    None,
                    False,
                )
        ended = datetime.now(UTC)
        # read back through the descriptor we wrote with: the path may be a model's by now
        tail = stderr_tail(stderr, stderr_start)
    return judge(name, outcome, tail, limits, isolation, started, ended)


def _open_log(path: Path) -> IO[bytes]:
    """Open a log for appending and reading, refusing links, FIFOs and other non-files."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise errors.DispatcherError(f"cannot open the log {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise errors.DispatcherError(f"the log {path} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a+b")


def _runner_command(
    model: Path, name: str, inis: Sequence[Path], work: Path, limits: ModelLimits
) -> list[str]:
    """``python -I -S run_model.py ...`` with the bare interpreter."""
    return [
        str(interpreter()),
        "-I",
        "-S",
        str(RUNTIME_DIR / "run_model.py"),
        "--name",
        name,
        "--work-dir",
        str(work),
        "--memory-mb",
        str(limits.memory_mb),
        "--cpu-seconds",
        str(limits.cpu_seconds),
        "--file-size-mb",
        str(limits.file_size_mb),
        "--open-files",
        str(limits.open_files),
        "--processes",
        str(limits.processes),
        "--",
        str(model),
        *[str(path) for path in inis],
    ]


def _environment(work: Path) -> dict[str, str]:
    """The model's whole environment: an allow list, nothing of the service's."""
    return {
        "PATH": SANDBOX_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(work),
        "TMPDIR": "/tmp",  # noqa: S108 - a private tmpfs under bwrap
        "PYTHONPATH": str(RUNTIME_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def is_root() -> bool:
    return os.geteuid() == 0


def hand_over(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything under it to ``uid``/``gid`` (links themselves, not targets)."""
    try:
        os.chown(root, uid, gid, follow_symlinks=False)
    except FileNotFoundError:
        return
    for folder, subfolders, files in os.walk(root):
        for entry in (*subfolders, *files):
            try:
                os.chown(os.path.join(folder, entry), uid, gid, follow_symlinks=False)
            except FileNotFoundError:
                continue
