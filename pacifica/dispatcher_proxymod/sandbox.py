"""Run one user model in its own sandboxed process, with limits, and say what happened.

Every model runs as ``python -I -S runtime/run_model.py ...`` (the bare interpreter: no
site-packages, no ``PYTHON*`` variables) with an environment built from an allow list, resource
limits (see ``runtime/run_model.py``), a wall-clock timeout after which everything it started is
killed, and its stdout and stderr appended to the caller's files.

Isolation ``bwrap`` (bubblewrap) adds: a file system built from scratch with the system's
``/usr`` (and the ``/bin``, ``/lib*`` links), the Python installation (its site-packages hidden),
the runtime directory and ``settings.sandbox_ro_paths`` read-only, a private ``/tmp``, a minimal
``/proc`` and ``/dev``, two files of ``/etc`` (the loader cache, the time zone), and the task's
work directory writable at its own absolute path. Nothing else of the host exists inside: not the
database, the configuration, credentials, ``/root``, ``/home`` or other tasks' directories. It has
no network, its own PID, IPC and UTS namespaces, a new session, and dies with its parent.

The model never runs as root, so ``RLIMIT_NPROC`` bounds it (the kernel exempts uid 0):

* Service running as root: bwrap runs without a user namespace (so it may bind root-only paths,
  such as a Python under ``/root``) and ``setpriv`` switches to uid/gid :data:`SANDBOX_UID_BASE`
  plus the service's pid, with no groups, no capabilities and ``no_new_privs``. That uid belongs
  to this service process alone, so the process limit counts this model only. The work directory
  is handed to that uid for the run and given back afterwards.
* Service running as another user: bwrap makes a user namespace (uid 1000 inside, the service's
  uid outside); the kernel counts processes per user namespace, so the limit is per model too.

Why the bwrap command line looks the way it does (bubblewrap 0.8, found by trying as root):

* A user namespace made by root maps the model to kernel uid 0, which ``RLIMIT_NPROC`` exempts,
  hence no ``--unshare-user`` for root and ``setpriv`` instead.
* bwrap run as an unprivileged user cannot bind a path it cannot reach (it resolves sources,
  even ``--ro-bind-fd`` ones, as the caller), e.g. a Python installed under ``/root``: hence bwrap
  runs as root, keeping only ``CAP_SETUID``/``CAP_SETGID``/``CAP_SETPCAP`` for ``setpriv``.
* Without ``CAP_DAC_OVERRIDE`` bwrap cannot ``--chdir`` into a ``0700`` work directory owned by
  the model's uid: the runner changes directory itself, after the uid switch.
* bwrap creates missing parents of mount points ``0700``; ``--perms 0755 --dir`` makes them
  traversable for the unprivileged model. The root tmpfs is remounted read-only at the end.
* bwrap returns as soon as the model exits, while its children may live on for a moment: the
  sandbox's init (``--info-fd`` gives its pid) is killed and awaited after every run.

Isolation ``process`` (no bwrap, or chosen on purpose) keeps the clean environment, the limits,
the timeout and the process-group kill, but the model sees the host's file system and network as
the service's user sees them, and the process limit counts all of that user's processes (it does
not apply at all to root). For the length of a run the supervising process is a child
subreaper (``prctl``), so a process the model left in a session of its own comes back to it
when its parent dies, and is killed with the rest. ``auto`` uses bwrap when it works here and
warns loudly once if not.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from . import errors
from .runtime import RUNTIME_DIR
from .runtime import run_model as runner
from .settings import ModelLimits, Settings

log = logging.getLogger(__name__)

#: The model's uid (and gid) when the service runs as root is this plus the service's pid.
SANDBOX_UID_BASE = 2_000_000_000
#: The model's uid and gid inside the user namespace when the service is not root.
NAMESPACE_ID = 1000
#: The model's ``PATH``.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
#: How long to wait for a killed sandbox to disappear before giving up on it.
KILL_GRACE_SECONDS = 10.0
#: ``prctl`` option that makes orphaned descendants come back to this process (linux/prctl.h).
PR_SET_CHILD_SUBREAPER = 36
#: Rounds of killing left-over processes (each round kills one generation) before giving up.
ORPHAN_ROUNDS = 100
#: How much of the end of the model's stderr is read to explain a failure.
STDERR_TAIL_BYTES = 8192
#: How long the bwrap probe may take.
PROBE_TIMEOUT_SECONDS = 60.0

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_SIGNAL_BASE = 128  # bwrap exits 128 + N when the model was killed by signal N
_PROBE_MODEL = '''\
import os


def sandbox_probe():
    """Fails unless it runs in its own PID namespace, not as root, and can write here."""
    if os.getpid() > 10:
        raise RuntimeError("not in a PID namespace: pid %d" % os.getpid())
    if os.geteuid() == 0:
        raise RuntimeError("still root")
    with open("probe.txt", "w") as handle:
        handle.write("ok")
'''


@dataclass(frozen=True)
class ModelRun:
    """What happened to one model run."""

    model: str
    started: datetime
    ended: datetime
    exit_code: int | None
    signal: int | None
    outcome: str  # "ok" | "error" | "timeout" | "limit" | "killed"
    limit: str | None  # "memory" | "cpu" | "file_size" | "processes" | "open_files" | None
    reason: str | None  # names the model and what happened; None when ok
    isolation: str  # "bwrap" | "process"

    @property
    def ok(self) -> bool:
        """True when the model's callable returned (or it exited with status 0)."""
        return self.outcome == "ok"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (timestamps in ISO 8601)."""
        return {
            "model": self.model,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
            "duration_seconds": round((self.ended - self.started).total_seconds(), 3),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "signal_name": _signal_name(self.signal) if self.signal is not None else None,
            "outcome": self.outcome,
            "limit": self.limit,
            "reason": self.reason,
            "isolation": self.isolation,
        }


@dataclass(frozen=True)
class _Exit:
    """How the supervised process ended."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    cpu_seconds: float


# --------------------------------------------------------------------------- public functions


def sandbox_status(settings: Settings) -> str:
    """The isolation models get: ``"bwrap"`` when it works here, else ``"process"``.

    Raises :class:`errors.SandboxUnavailable` when ``settings.sandbox`` is ``"bwrap"`` and
    bubblewrap does not work. The probe runs once per process (and user).
    """
    if settings.sandbox == "process":
        return "process"
    problem = _bwrap_problem()
    if problem is None:
        return "bwrap"
    if settings.sandbox == "bwrap":
        raise errors.SandboxUnavailable(
            f"DISPATCHER_SANDBOX=bwrap, but bubblewrap does not work here: {problem}"
        )
    _warn_once(problem)
    return "process"


def run_model(
    model_file: Path,
    ini_paths: Sequence[Path],
    work_dir: Path,
    stdout_path: Path,
    stderr_path: Path,
    settings: Settings,
) -> ModelRun:
    """Run the callable named like ``model_file`` with ``ini_paths``, sandboxed; never raises
    for anything the model does (only for a sandbox that cannot start at all)."""
    work = Path(os.path.abspath(work_dir))
    model = Path(os.path.abspath(model_file))
    inis = [Path(os.path.abspath(path)) for path in ini_paths]
    for path in (model, *inis):
        if not path.is_relative_to(work):
            raise ValueError(f"{path} is not inside the work directory {work}")
    if not work.is_dir():
        raise ValueError(f"work directory {work} does not exist")
    for extra in settings.sandbox_ro_paths:
        if not os.path.isabs(extra) or not os.path.exists(extra):
            raise errors.SettingsError(
                "DISPATCHER_SANDBOX_RO_PATHS", f"{extra!r} is not an existing absolute path"
            )
    isolation = sandbox_status(settings)
    return _execute(model, inis, work, stdout_path, stderr_path, settings, isolation)


# --------------------------------------------------------------------------- running


def _execute(
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
    sandbox_uid = SANDBOX_UID_BASE + os.getpid() if isolation == "bwrap" and _is_root() else None
    started = datetime.now(UTC)
    with _open_log(stdout_path) as stdout, _open_log(stderr_path) as stderr:
        stderr_start = os.fstat(stderr.fileno()).st_size
        if isolation == "bwrap":
            if sandbox_uid is not None:
                _hand_over(work, sandbox_uid, sandbox_uid)
            try:
                outcome = _supervise_bwrap(
                    command, environment, work, stdout, stderr, settings, sandbox_uid
                )
            finally:
                if sandbox_uid is not None:
                    _hand_over(work, os.geteuid(), os.getegid())
        else:
            with _reaping_orphans():  # bwrap's PID namespace does this for the other branch
                outcome = _supervise(
                    _outer_prefix() + command,
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
        tail = _stderr_tail(stderr, stderr_start)
    return _judge(name, outcome, tail, limits, isolation, started, ended)


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
        str(_interpreter()),
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


def _interpreter() -> Path:
    """The base installation's interpreter (not a virtualenv's), by its real path."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"python{version}", "python3"):
        path = Path(sys.base_prefix) / "bin" / candidate
        if path.exists():
            return path.resolve()
    return Path(sys.executable).resolve()


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


def _is_root() -> bool:
    return os.geteuid() == 0


def _outer_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL``: the model (or bwrap) dies if this thread dies."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def _hand_over(root: Path, uid: int, gid: int) -> None:
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


# --------------------------------------------------------------------------- bubblewrap


class _Tree:
    """bwrap arguments that build the sandbox's file system, parent folders made ``0755``."""

    def __init__(self) -> None:
        self.args: list[str] = []
        # destination -> True when folders may be created under it (tmpfs, new folders)
        self._mounts: dict[str, bool] = {"/": True}

    def _needs_folder(self, path: str) -> bool:
        owner = max(
            (
                dest
                for dest in self._mounts
                if path == dest or path.startswith(dest.rstrip("/") + "/")
            ),
            key=len,
        )
        return owner != path and self._mounts[owner]

    def _parents(self, destination: str) -> None:
        for parent in reversed(Path(destination).parents):
            text = str(parent)
            if self._needs_folder(text):
                self.args += ["--perms", "0755", "--dir", text]
                self._mounts[text] = True

    def read_only(self, source: str, destination: str | None = None) -> None:
        destination = destination or source
        self._parents(destination)
        self.args += ["--ro-bind", source, destination]
        self._mounts[destination] = False

    def writable(self, source: str, destination: str | None = None) -> None:
        destination = destination or source
        self._parents(destination)
        self.args += ["--bind", source, destination]
        self._mounts[destination] = False

    def tmpfs(self, destination: str, perms: str = "0755") -> None:
        self._parents(destination)
        self.args += ["--perms", perms, "--tmpfs", destination]
        self._mounts[destination] = True

    def symlink(self, target: str, destination: str) -> None:
        self._parents(destination)
        self.args += ["--symlink", target, destination]
        self._mounts[destination] = False

    def special(self, option: str, destination: str) -> None:
        """``--proc`` or ``--dev``."""
        self._parents(destination)
        self.args += [option, destination]
        self._mounts[destination] = False

    def covers(self, path: str) -> bool:
        """True when ``path`` already shows through a read-only bind."""
        return any(
            not writable and (path == dest or path.startswith(dest.rstrip("/") + "/"))
            for dest, writable in self._mounts.items()
            if dest != "/"
        )


def _file_system(work: Path, extra_read_only: Sequence[str]) -> list[str]:
    """The bwrap mount arguments for one model."""
    tree = _Tree()
    for folder in _SYSTEM_DIRS:
        if os.path.islink(folder):
            tree.symlink(os.readlink(folder), folder)
        elif os.path.isdir(folder):
            tree.read_only(folder)
    for etc_file in _ETC_FILES:
        if os.path.exists(etc_file):
            tree.read_only(os.path.realpath(etc_file), etc_file)
    python_home = os.path.realpath(sys.base_prefix)
    if not tree.covers(python_home):
        tree.read_only(python_home)
    interpreter = str(_interpreter())
    if not tree.covers(interpreter):
        tree.read_only(interpreter)
    for hidden in _site_packages():
        tree.tmpfs(hidden)
    tree.tmpfs("/tmp", "1777")  # noqa: S108 - private to the sandbox
    tree.special("--proc", "/proc")
    tree.special("--dev", "/dev")
    tree.read_only(str(RUNTIME_DIR))
    for extra in extra_read_only:
        tree.read_only(os.path.realpath(extra), os.path.abspath(extra))
    tree.writable(os.path.realpath(work), str(work))
    # The root itself is a tmpfs holding only mount points: make it read-only too.
    return [*tree.args, "--remount-ro", "/"]


def _site_packages() -> list[str]:
    """The base installation's site-packages folders (hidden: models get the stdlib only)."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    found: list[str] = []
    for key in ("purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_path(key, vars=base))
        if os.path.isdir(path) and path not in found and not str(RUNTIME_DIR).startswith(path):
            found.append(path)
    return found


def _bwrap_command(
    bwrap: str,
    setpriv: str | None,
    work: Path,
    extra_read_only: Sequence[str],
    info_fd: int,
    sandbox_uid: int | None,
) -> list[str]:
    """The bwrap command line that wraps the runner command."""
    command = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--info-fd",
        str(info_fd),
    ]
    if sandbox_uid is None:
        identity = str(NAMESPACE_ID)
        command += ["--unshare-user", "--uid", identity, "--gid", identity]
    else:
        # bwrap keeps every capability for root: keep only what setpriv needs to drop them.
        command += ["--cap-drop", "ALL"]
        for capability in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
            command += ["--cap-add", capability]
    command += _file_system(work, extra_read_only)
    # No --chdir: bwrap's root has no DAC override; run_model.py changes to the work dir.
    command += ["--chdir", "/", "--"]
    if sandbox_uid is not None:
        assert setpriv is not None
        identity = str(sandbox_uid)
        command += [
            setpriv,
            "--reuid",
            identity,
            "--regid",
            identity,
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    return command


def _supervise_bwrap(
    command: list[str],
    environment: dict[str, str],
    work: Path,
    stdout: IO[bytes],
    stderr: IO[bytes],
    settings: Settings,
    sandbox_uid: int | None,
) -> _Exit:
    """Run ``command`` inside bwrap; the info pipe tells us the sandbox's init to kill."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise errors.SandboxUnavailable("bwrap is no longer on PATH")
    info_read, info_write = os.pipe()
    try:
        wrapped = _bwrap_command(
            bwrap,
            shutil.which("setpriv"),
            work,
            settings.sandbox_ro_paths,
            info_write,
            sandbox_uid,
        )
        return _supervise(
            _outer_prefix() + wrapped + command,
            environment,
            work,
            stdout,
            stderr,
            settings.limits,
            (info_read, info_write),
            True,
        )
    finally:
        for fd in (info_read, info_write):
            with contextlib.suppress(OSError):
                os.close(fd)


# --------------------------------------------------------------------------- supervision


@dataclass
class _Sandbox:
    """The running process and, under bwrap, the sandbox's init (the PID namespace's pid 1)."""

    process: subprocess.Popen[bytes]
    pidfd: int
    init_pidfd: int | None = None
    closers: list[int] = field(default_factory=list)


def _supervise(
    command: list[str],
    environment: dict[str, str],
    work: Path,
    stdout: IO[bytes],
    stderr: IO[bytes],
    limits: ModelLimits,
    info_pipe: tuple[int, int] | None,
    signal_in_status: bool,
) -> _Exit:
    """Start ``command`` in a new session, wait up to the timeout, kill everything it left."""
    deadline = time.monotonic() + limits.timeout_seconds
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=environment,
        cwd="/" if info_pipe else work,
        start_new_session=True,
        close_fds=True,
        pass_fds=(info_pipe[1],) if info_pipe else (),
    )
    sandbox = _Sandbox(process, os.pidfd_open(process.pid))
    try:
        if info_pipe is not None:
            os.close(info_pipe[1])
            child = _read_init_pid(info_pipe[0], deadline)
            if child is not None:
                try:
                    sandbox.init_pidfd = os.pidfd_open(child)
                except ProcessLookupError:
                    sandbox.init_pidfd = None
        finished = _wait_for(sandbox.pidfd, deadline)
        # Kill whatever is left even after a clean exit: bwrap returns as soon as the model
        # exits, while its children may live on; the leader's zombie still holds its group.
        _kill(sandbox)
        return _reap(process, timed_out=not finished, signal_in_status=signal_in_status)
    finally:
        for fd in (sandbox.pidfd, sandbox.init_pidfd):
            if fd is not None:
                os.close(fd)


@contextlib.contextmanager
def _reaping_orphans() -> Iterator[None]:
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


def _wait_for(pidfd: int, deadline: float) -> bool:
    """Wait until the process behind ``pidfd`` exits; False when the deadline passes first."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
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


def _reap(process: subprocess.Popen[bytes], *, timed_out: bool, signal_in_status: bool) -> _Exit:
    """Collect the exit status and CPU time; bwrap reports a signal N as status 128 + N."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    if os.WIFSIGNALED(status):
        return _Exit(None, os.WTERMSIG(status), timed_out, cpu)
    code = os.WEXITSTATUS(status)
    if signal_in_status and _SIGNAL_BASE < code < _SIGNAL_BASE + signal.NSIG:
        return _Exit(None, code - _SIGNAL_BASE, timed_out, cpu)
    return _Exit(code, None, timed_out, cpu)


# --------------------------------------------------------------------------- judging


def _stderr_tail(handle: IO[bytes], start: int) -> str:
    """The end of what this run wrote to stderr, read through the run's own descriptor."""
    try:
        size = os.fstat(handle.fileno()).st_size
        offset = max(start, size - STDERR_TAIL_BYTES)
        return os.pread(handle.fileno(), size - offset, offset).decode("utf-8", "replace")
    except OSError:
        return ""


def _runner_report(tail: str) -> dict[str, str] | None:
    """The runner's marker line: the last one in the stderr tail (processes the model started
    may still have written after the runner reported and exited)."""
    markers = [line for line in tail.splitlines() if line.startswith(runner.MARKER)]
    if not markers:
        return None
    try:
        report = json.loads(markers[-1][len(runner.MARKER) :])
    except ValueError:
        return None
    if not isinstance(report, dict):
        return None
    return {str(key): str(value) for key, value in report.items()}


def _last_line(tail: str) -> str | None:
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _limit_text(limit: str, limits: ModelLimits) -> str:
    return {
        "memory": f"exceeded the memory limit of {limits.memory_mb} MB",
        "cpu": f"exceeded the CPU time limit of {limits.cpu_seconds} s",
        "file_size": f"exceeded the file size limit of {limits.file_size_mb} MB",
        "open_files": f"exceeded the limit of {limits.open_files} open files",
        "processes": f"exceeded the limit of {limits.processes} processes",
    }[limit]


def _judge(
    name: str,
    result: _Exit,
    tail: str,
    limits: ModelLimits,
    isolation: str,
    started: datetime,
    ended: datetime,
) -> ModelRun:
    """Turn an exit status and the stderr tail into a :class:`ModelRun`."""
    outcome, limit, reason = _verdict(name, result, tail, limits)
    return ModelRun(
        model=name,
        started=started,
        ended=ended,
        exit_code=result.exit_code,
        signal=result.signal,
        outcome=outcome,
        limit=limit,
        reason=reason,
        isolation=isolation,
    )


def _verdict(
    name: str, result: _Exit, tail: str, limits: ModelLimits
) -> tuple[str, str | None, str | None]:
    """``(outcome, limit, reason)``."""
    prefix = f"model {name}:"
    if result.timed_out:
        return "timeout", None, f"{prefix} timed out after {limits.timeout_seconds:g} s (killed)"
    if result.signal is not None:
        return _signal_verdict(prefix, result, limits)
    if result.exit_code == runner.EXIT_OK:
        return "ok", None, None
    report = _runner_report(tail) if result.exit_code in runner.RESERVED_EXIT_CODES else None
    if report is not None:
        what, detail = report.get("what", ""), report.get("detail", "")
        if what.startswith("limit:"):
            limit = what.removeprefix("limit:")
            if limit in ("memory", "file_size", "open_files", "processes"):
                return "limit", limit, f"{prefix} {_limit_text(limit, limits)} ({detail})"
        if what == "raised":
            return "error", None, f"{prefix} raised {detail}"
        if what == "import":
            return "error", None, f"{prefix} failed to import: {detail}"
        if what == "no_callable":
            return "error", None, f"{prefix} {detail}"
        if what == "usage":
            return "error", None, f"{prefix} the sandbox runner could not start it: {detail}"
    reason = f"{prefix} exited with status {result.exit_code}"
    last = _last_line(tail)
    return "error", None, f"{reason} (stderr: {last})" if last else reason


def _signal_verdict(
    prefix: str, result: _Exit, limits: ModelLimits
) -> tuple[str, str | None, str | None]:
    number = result.signal
    assert number is not None
    name = _signal_name(number)
    if number == signal.SIGXCPU or (
        number == signal.SIGKILL and result.cpu_seconds >= limits.cpu_seconds
    ):
        return "limit", "cpu", f"{prefix} {_limit_text('cpu', limits)} (killed by {name})"
    if number == signal.SIGXFSZ:
        return "limit", "file_size", f"{prefix} {_limit_text('file_size', limits)} ({name})"
    if number == signal.SIGKILL:
        return "killed", None, f"{prefix} was killed by {name} (possibly out of memory)"
    return "killed", None, f"{prefix} was killed by {name}"


# --------------------------------------------------------------------------- probing


_probe_lock = threading.Lock()
_probe_results: dict[tuple[str | None, int], str | None] = {}
_warned: set[str] = set()


def _bwrap_problem() -> str | None:
    """Why bwrap cannot sandbox models here, or None when it works (probed once)."""
    key = (shutil.which("bwrap"), os.geteuid())
    with _probe_lock:
        if key not in _probe_results:
            _probe_results[key] = _probe(key[0])
        return _probe_results[key]


def _probe(bwrap: str | None) -> str | None:
    """Run a tiny model through the real bwrap sandbox and check it came back fine."""
    if bwrap is None:
        return "bwrap is not installed (not found on PATH)"
    if _is_root() and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is needed to drop root inside the sandbox"
    with tempfile.TemporaryDirectory(prefix="dispatcher-probe-") as folder:
        work = Path(folder)
        model = work / "sandbox_probe.py"
        model.write_text(_PROBE_MODEL)
        settings = Settings(limits=ModelLimits(timeout_seconds=PROBE_TIMEOUT_SECONDS))
        try:
            run = _execute(model, [], work, work / "out.log", work / "err.log", settings, "bwrap")
        except OSError as exc:
            return f"cannot start bwrap: {exc}"
        if not run.ok:
            return f"a test run failed: {run.reason}"
        if (work / "probe.txt").read_text() != "ok":
            return "a test run could not write its work directory"
    return None


def _warn_once(problem: str) -> None:
    with _probe_lock:
        if problem in _warned:
            return
        _warned.add(problem)
    log.warning(
        "SANDBOX DEGRADED: bubblewrap does not work here (%s). Models run with process "
        "isolation only (clean environment, limits, timeout): they can read what this "
        "service's user can read and reach the network. Install bubblewrap, or set "
        "DISPATCHER_SANDBOX=process to accept this.",
        problem,
    )
