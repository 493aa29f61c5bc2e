"""One model run with a chosen isolation: its command, environment, logs and ownership of the
work directory; supervised, then judged."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .. import errors
from ..runtime import RUNTIME_DIR
from ..settings import ModelLimits, Settings
from ..tree import chown_tree
from .filesystem import interpreter, tmp_is_sized
from .seccomp import filter_program
from .supervise import outer_prefix, reaping_orphans, supervise, supervise_bwrap
from .verdict import ModelRun, judge, stderr_tail

#: The model's uid (and gid) when the service runs as root is this plus the service's pid.
SANDBOX_UID_BASE = 2_000_000_000

#: The model's ``PATH``.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
#: The most of the runner's report that is read (one line: a short reason, where in the model's
#: code, and its traceback of at most 2000 characters, ~13 KB when escaped; below a pipe buffer).
REPORT_LIMIT_BYTES = 16384


def execute(
    model: Path,
    inis: Sequence[Path],
    work: Path,
    stdout_path: Path,
    stderr_path: Path,
    settings: Settings,
    isolation: str,
    cancel: threading.Event | None = None,
) -> ModelRun:
    """Start, supervise and judge one run with the given isolation (killed once ``cancel``
    is set)."""
    name = model.stem
    limits = settings.limits
    bwrap = isolation == "bwrap"
    environment = _environment(work)
    sandbox_uid = SANDBOX_UID_BASE + os.getpid() if bwrap and is_root() else None
    started = datetime.now(UTC)
    with (
        _open_log(stdout_path) as stdout,
        _open_log(stderr_path) as stderr,
        _Channels(filter_program()) as channels,
    ):
        command = _runner_command(
            model, name, inis, work, limits, channels, tmp_limited=bwrap and tmp_is_sized()
        )
        stderr_start = os.fstat(stderr.fileno()).st_size
        if bwrap:
            if sandbox_uid is not None:
                hand_over(work, sandbox_uid, sandbox_uid)
            try:
                outcome = supervise_bwrap(
                    command,
                    environment,
                    work,
                    stdout,
                    stderr,
                    settings,
                    sandbox_uid,
                    channels.child_fds,
                    cancel,
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
                    channels.child_fds,
                    cancel,
                )
        ended = datetime.now(UTC)
        # read back through the descriptor we wrote with: the path may be a model's by now
        tail = stderr_tail(stderr, stderr_start)
        report = channels.report()
    return judge(name, outcome, report, tail, limits, isolation, started, ended)


class _Channels:
    """The descriptors a run gets besides stdout and stderr: the seccomp filter to install (a
    pipe holding the program) and the report pipe only the runner writes and we read."""

    def __init__(self, program: bytes | None) -> None:
        self.report_read, self.report_write = os.pipe()
        os.set_blocking(self.report_read, False)
        self.seccomp_read: int | None = None
        if program is not None:
            self.seccomp_read, writer = os.pipe()
            try:
                os.write(writer, program)  # far below a pipe's buffer (64 KiB)
            finally:
                os.close(writer)

    @property
    def child_fds(self) -> tuple[int, ...]:
        """The descriptors the runner inherits."""
        extra = () if self.seccomp_read is None else (self.seccomp_read,)
        return (self.report_write, *extra)

    def report(self) -> bytes:
        """What the runner wrote on the report pipe (at most one pipe buffer)."""
        chunks: list[bytes] = []
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.report_read, 65536):
                chunks.append(chunk)
                if sum(map(len, chunks)) >= REPORT_LIMIT_BYTES:
                    break
        return b"".join(chunks)[-REPORT_LIMIT_BYTES:]

    def __enter__(self) -> _Channels:
        return self

    def __exit__(self, *_: object) -> None:
        for fd in (self.report_read, self.report_write, self.seccomp_read):
            if fd is not None:
                os.close(fd)


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
    model: Path,
    name: str,
    inis: Sequence[Path],
    work: Path,
    limits: ModelLimits,
    channels: _Channels,
    *,
    tmp_limited: bool,
) -> list[str]:
    """``python -I -S run_model.py ...`` with the bare interpreter. Under bwrap ``/tmp`` is a
    tmpfs of ``limits.tmp_mb`` taken from the memory limit; the rest is the address space."""
    memory_mb = limits.address_space_mb if tmp_limited else limits.memory_mb
    optional = ["--tmp-mb", str(limits.tmp_mb)] if tmp_limited else []
    if channels.seccomp_read is not None:
        optional += ["--seccomp-fd", str(channels.seccomp_read)]
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
        str(memory_mb),
        "--cpu-seconds",
        str(limits.cpu_seconds),
        "--file-size-mb",
        str(limits.file_size_mb),
        "--open-files",
        str(limits.open_files),
        "--processes",
        str(limits.processes),
        "--report-fd",
        str(channels.report_write),
        *optional,
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
    """Give ``root`` and everything under it to ``uid``/``gid`` (links themselves, not targets),
    whatever the depth of the tree a model left (iterative, see :mod:`..tree`)."""
    chown_tree(root, uid, gid)
