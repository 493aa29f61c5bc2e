"""Starting the sandboxed process, waiting for it up to its timeout, and killing everything it
left (the process group, the PID namespace, orphans given back to a subreaper)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .. import errors
from ..settings import ModelLimits, Settings
from .filesystem import bwrap_command
from .verdict import Exit

log = logging.getLogger(__name__)


MEBIBYTE = 1024 * 1024
#: How long to wait for a killed sandbox to disappear before giving up on it.
KILL_GRACE_SECONDS = 10.0

#: How often a run that can be cancelled looks at its cancel event.
CANCEL_POLL_SECONDS = 0.25

#: ``prctl`` option that makes orphaned descendants come back to this process (linux/prctl.h).
PR_SET_CHILD_SUBREAPER = 36

#: Rounds of killing left-over processes (each round kills one generation) before giving up.
ORPHAN_ROUNDS = 100

_SIGNAL_BASE = 128  # bwrap exits 128 + N when the model was killed by signal N


def outer_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL``: the model (or bwrap) dies if this thread dies."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def supervise_bwrap(
    command: list[str],
    environment: dict[str, str],
    work: Path,
    stdout: IO[bytes],
    stderr: IO[bytes],
    settings: Settings,
    sandbox_uid: int | None,
    child_fds: tuple[int, ...] = (),
    cancel: threading.Event | None = None,
) -> Exit:
    """Run ``command`` inside bwrap; the info pipe tells us the sandbox's init to kill.
    ``child_fds`` stay open in the sandbox (bwrap keeps the descriptors it inherits)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise errors.SandboxUnavailable("bwrap is no longer on PATH")
    info_read, info_write = os.pipe()
    try:
        wrapped = bwrap_command(
            bwrap,
            shutil.which("setpriv"),
            work,
            settings.sandbox_ro_paths,
            info_write,
            sandbox_uid,
            settings.limits.tmp_mb * MEBIBYTE,
        )
        return supervise(
            outer_prefix() + wrapped + command,
            environment,
            work,
            stdout,
            stderr,
            settings.limits,
            (info_read, info_write),
            True,
            child_fds,
            cancel,
        )
    finally:
        os.close(info_read)  # supervise() closes info_write once the child has it


@dataclass
class _Sandbox:
    """The running process and, under bwrap, the sandbox's init (the PID namespace's pid 1)."""

    process: subprocess.Popen[bytes]
    pidfd: int
    init_pidfd: int | None = None
    closers: list[int] = field(default_factory=list)


def supervise(
    command: list[str],
    environment: dict[str, str],
    work: Path,
    stdout: IO[bytes],
    stderr: IO[bytes],
    limits: ModelLimits,
    info_pipe: tuple[int, int] | None,
    signal_in_status: bool,
    child_fds: tuple[int, ...] = (),
    cancel: threading.Event | None = None,
) -> Exit:
    """Start ``command`` in a new session, wait up to the timeout (or until ``cancel`` is
    set), kill everything it left.

    ``child_fds`` (and the info pipe's write end) are inherited by the child; the info pipe's
    write end is closed here once the child has it."""
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=environment,
            cwd="/" if info_pipe else work,
            start_new_session=True,
            close_fds=True,
            pass_fds=(*child_fds, *((info_pipe[1],) if info_pipe else ())),
        )
    finally:
        if info_pipe is not None:
            os.close(info_pipe[1])
    sandbox = _Sandbox(process, os.pidfd_open(process.pid))
    try:
        if info_pipe is not None:
            child = _read_init_pid(info_pipe[0], deadline)
            if child is not None:
                try:
                    sandbox.init_pidfd = os.pidfd_open(child)
                except ProcessLookupError:
                    sandbox.init_pidfd = None
        finished = _wait_for(sandbox.pidfd, deadline, cancel)
        cancelled = cancel is not None and cancel.is_set()
        # Kill whatever is left even after a clean exit: bwrap returns as soon as the model
        # exits, while its children may live on; the leader's zombie still holds its group.
        _kill(sandbox)
        timed_out = not finished and not cancelled
        return _reap(process, timed_out=timed_out, signal_in_status=signal_in_status)
    finally:
        for fd in (sandbox.pidfd, sandbox.init_pidfd):
            if fd is not None:
                os.close(fd)


@contextlib.contextmanager
def reaping_orphans() -> Iterator[None]:
    """While the block runs, processes orphaned below this one come back to it (a child
    subreaper); after it, the ones that did are killed and reaped."""
    if not _set_subreaper(True):
        yield
        return
    known = _children_of(os.getpid())
    try:
        yield
    finally:
        _kill_orphans(known)
        _set_subreaper(False)


def _set_subreaper(on: bool) -> bool:
    """Make this process the one orphaned descendants are given to (or stop); False where
    ``prctl`` is missing or refuses."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)


def _children_of(parent: int) -> set[int]:
    """The pids whose parent is ``parent`` (from ``/proc/<pid>/stat``)."""
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat_line = handle.read()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat_line[stat_line.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            found.add(int(entry.name))
    return found


def _kill_orphans(known: set[int]) -> None:
    """Kill and reap the children this process has now and did not have before the run: the
    run's left-overs, given back to this subreaper. Their own children come back as they die,
    so this goes on, generation by generation, until none is left."""
    for _ in range(ORPHAN_ROUNDS):
        orphans = _children_of(os.getpid()) - known
        if not orphans:
            return
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    log.error("processes left by a model still appear after %d rounds of killing", ORPHAN_ROUNDS)


def _read_init_pid(fd: int, deadline: float) -> int | None:
    """The ``child-pid`` bwrap writes on ``--info-fd`` (None if it never comes)."""
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        buffer += chunk
        try:
            return int(json.loads(buffer)["child-pid"])
        except (ValueError, KeyError, TypeError):
            continue


def _wait_for(pidfd: int, deadline: float, cancel: threading.Event | None = None) -> bool:
    """Wait until the process behind ``pidfd`` exits; False when the deadline passes or
    ``cancel`` is set first."""
    while True:
        if cancel is not None and cancel.is_set():
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if cancel is not None:
            remaining = min(remaining, CANCEL_POLL_SECONDS)
        ready, _, _ = select.select([pidfd], [], [], remaining)
        if ready:
            return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill(sandbox: _Sandbox) -> None:
    """SIGKILL the sandbox's init and the process group; wait until the PID namespace is gone.

    The kernel kills every process of a PID namespace when its init dies, and the init's exit
    is reported only once they are all gone.
    """
    if sandbox.init_pidfd is not None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(sandbox.init_pidfd, signal.SIGKILL)
    _kill_group(sandbox.process.pid)
    if sandbox.init_pidfd is not None and not _wait_for(
        sandbox.init_pidfd, time.monotonic() + KILL_GRACE_SECONDS
    ):
        log.error("the sandbox of pid %d did not go away after SIGKILL", sandbox.process.pid)


def _reap(process: subprocess.Popen[bytes], *, timed_out: bool, signal_in_status: bool) -> Exit:
    """Collect the exit status and CPU time; bwrap reports a signal N as status 128 + N."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    if os.WIFSIGNALED(status):
        return Exit(None, os.WTERMSIG(status), timed_out, cpu)
    code = os.WEXITSTATUS(status)
    if signal_in_status and _SIGNAL_BASE < code < _SIGNAL_BASE + signal.NSIG:
        return Exit(None, code - _SIGNAL_BASE, timed_out, cpu)
    return Exit(code, None, timed_out, cpu)
