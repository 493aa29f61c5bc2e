"""Run one user model file: the program the sandbox starts, never imported by a model.

Usage (the sandbox builds this command line)::

    python -I -S run_model.py --name NAME --work-dir DIR [limits] MODEL_FILE [INI ...]

It puts its own directory (the runtime, holding our ``proxymod``) first on ``sys.path``, lowers
its resource limits, changes to the work directory, loads ``MODEL_FILE`` by path, and calls the
callable named ``NAME`` with the INI paths as strings, in order.

It imports the standard library only: it runs with the bare interpreter, without site-packages.

Exit status: ``0`` when the callable returned; the status a model passed to ``sys.exit`` or
``os._exit``; else one of the reserved ``EXIT_*`` codes below, each explained by one line
starting with :data:`MARKER` and holding a JSON object (``what`` and ``detail``), so the
dispatcher can tell a model's own ``sys.exit(101)`` apart from ours. That line goes to stderr
for people, and to ``--report-fd``, a pipe only the dispatcher reads: what a model prints on
stderr cannot pass for it.

With ``--seccomp-fd`` it reads a compiled seccomp filter (classic BPF) from that descriptor
and installs it, with ``no_new_privs``, before it imports the model.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import json
import os
import resource
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

EXIT_OK = 0
#: The callable (or the module, while loading) raised an exception.
EXIT_RAISED = 101
#: The module has no attribute named like the file, or it is not callable.
EXIT_NO_CALLABLE = 102
#: Importing the model file failed (syntax error, missing file, exception at import time).
EXIT_IMPORT_FAILED = 103
#: The model ran out of address space (``MemoryError`` under ``RLIMIT_AS``).
EXIT_MEMORY = 104
#: A write went past ``RLIMIT_FSIZE`` (``EFBIG``; Python ignores ``SIGXFSZ``).
EXIT_FILE_SIZE = 105
#: Opening a file failed with ``EMFILE`` under ``RLIMIT_NOFILE``.
EXIT_OPEN_FILES = 106
#: Starting a process or thread failed under ``RLIMIT_NPROC``.
EXIT_PROCESSES = 107
#: This program was started with wrong arguments (a dispatcher bug, not the model's).
EXIT_USAGE = 108
#: A write failed with ``ENOSPC`` while the sandbox's size-limited ``/tmp`` was full.
EXIT_TMP_SPACE = 109

RESERVED_EXIT_CODES = frozenset(range(EXIT_RAISED, EXIT_TMP_SPACE + 1))

#: Prefix of the last stderr line that explains a reserved exit status.
MARKER = "[run_model] "
#: Longest traceback (characters) the report carries; its end is kept.
_TRACEBACK_LIMIT = 2000

_MEBIBYTE = 1024 * 1024
_MESSAGE_LIMIT = 500
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_BPF_INSTRUCTION_BYTES = 8

#: Where the report line goes besides stderr (``--report-fd``), once the options are read.
_report_fd: int | None = None
#: The size of the sandbox's ``/tmp`` in MiB when it is limited (``--tmp-mb``), else 0.
_tmp_mb = 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_model.py", description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="the callable to call (the file's stem)")
    parser.add_argument("--work-dir", required=True, help="directory to run in")
    parser.add_argument("--memory-mb", type=int, default=0, help="address space limit")
    parser.add_argument("--cpu-seconds", type=int, default=0, help="CPU time limit")
    parser.add_argument("--file-size-mb", type=int, default=0, help="largest file it may write")
    parser.add_argument("--open-files", type=int, default=0, help="most open file descriptors")
    parser.add_argument("--processes", type=int, default=0, help="most processes and threads")
    parser.add_argument("--tmp-mb", type=int, default=0, help="size of the sandbox's /tmp")
    parser.add_argument("--seccomp-fd", type=int, default=None, help="compiled seccomp filter")
    parser.add_argument("--report-fd", type=int, default=None, help="where to write the report")
    parser.add_argument("model_file", help="path of the model's .py file")
    parser.add_argument("ini_paths", nargs="*", help="INI files, passed to the callable in order")
    return parser


def _lower_limit(kind: int, soft: int, hard: int | None = None) -> None:
    """Set a resource limit, never above the hard limit we inherited (0 means leave it)."""
    if soft <= 0:
        return
    _, inherited_hard = resource.getrlimit(kind)
    wanted_hard = soft if hard is None else hard
    if inherited_hard != resource.RLIM_INFINITY:
        wanted_hard = min(wanted_hard, inherited_hard)
    resource.setrlimit(kind, (min(soft, wanted_hard), wanted_hard))


def apply_limits(options: argparse.Namespace) -> None:
    """Lower this process's limits; the model and all its children inherit them."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core dumps in the work dir
    _lower_limit(resource.RLIMIT_AS, options.memory_mb * _MEBIBYTE)
    # The hard limit one second later turns an ignored SIGXCPU into SIGKILL.
    _lower_limit(resource.RLIMIT_CPU, options.cpu_seconds, options.cpu_seconds + 1)
    _lower_limit(resource.RLIMIT_FSIZE, options.file_size_mb * _MEBIBYTE)
    _lower_limit(resource.RLIMIT_NOFILE, options.open_files)
    _lower_limit(resource.RLIMIT_NPROC, options.processes)


def report(code: int, what: str, detail: str, **facts: str) -> int:
    """Write the marker line that explains ``code`` to stderr and return ``code``.

    ``facts`` are more fields of the report (``where``, ``source``, ``traceback``), each bounded.
    """
    with contextlib.suppress(Exception):  # a model may have broken sys.stderr; fd 2 still works
        sys.stderr.flush()
    fields = {"what": what, "detail": detail[:_MESSAGE_LIMIT]}
    if "where" in facts:
        fields["where"] = facts["where"][:_MESSAGE_LIMIT]
    short = MARKER + json.dumps(fields) + "\n"  # the log has the traceback already
    fields.update({key: value[-_TRACEBACK_LIMIT:] for key, value in facts.items() if value})
    full = MARKER + json.dumps(fields) + "\n"
    for fd, line in ((2, short), (_report_fd, full)):
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, line.encode("utf-8", "replace"))
    return code


def install_seccomp(fd: int) -> None:
    """Read a compiled seccomp filter from ``fd`` and install it for this process and all it
    starts; raises OSError when the kernel refuses it."""
    import ctypes  # only where a filter is given

    with os.fdopen(fd, "rb") as source:
        program = source.read()
    if not program or len(program) % _BPF_INSTRUCTION_BYTES:
        raise OSError(errno.EINVAL, f"a seccomp filter of {len(program)} bytes")

    class _Program(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _Program(len(program) // _BPF_INSTRUCTION_BYTES, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    for args in (
        (_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0),
    ):
        if libc.prctl(*[ctypes.c_ulong(arg) for arg in args]) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"prctl({args[0]}): {os.strerror(number)}")


def _tmp_is_full() -> bool:
    """True when the size-limited ``/tmp`` has (almost) no room left."""
    if _tmp_mb <= 0:
        return False
    try:
        info = os.statvfs("/tmp")  # noqa: S108 - the sandbox's own tmpfs
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < _MEBIBYTE


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` as the last line of a traceback shows it."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or while handling, innermost last."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def limit_exit_code(exc: BaseException) -> tuple[int, str] | None:
    """The reserved exit code and limit name when ``exc`` shows a resource limit was hit."""
    for link in _chain(exc):
        if isinstance(link, MemoryError):
            return EXIT_MEMORY, "memory"
        if isinstance(link, OSError):
            if link.errno == errno.EFBIG:
                return EXIT_FILE_SIZE, "file_size"
            if link.errno == errno.EMFILE:
                return EXIT_OPEN_FILES, "open_files"
            if link.errno == errno.ENOSPC and _tmp_is_full():
                return EXIT_TMP_SPACE, "tmp_space"
            if isinstance(link, BlockingIOError) and link.errno == errno.EAGAIN:
                return EXIT_PROCESSES, "processes"
        if isinstance(link, RuntimeError) and "can't start new thread" in str(link):
            return EXIT_PROCESSES, "processes"
    return None


def _shown_path(filename: str) -> str:
    """A frame's file as the uploader knows it: ``models/<name>.py`` for a model, ``proxymod/...``
    for the runtime, else the file's name."""
    path = os.path.abspath(filename)
    runtime_dir = os.path.dirname(os.path.abspath(__file__))
    if path.startswith(runtime_dir + os.sep):
        return os.path.relpath(path, runtime_dir)
    folder = os.path.basename(os.path.dirname(path))
    return f"{folder}/{os.path.basename(path)}" if folder == "models" else os.path.basename(path)


def user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``exc``'s traceback that are not this runner's (nor importlib's)."""
    this = os.path.abspath(__file__)
    return [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ") and os.path.abspath(frame.filename) != this
    ]


def user_traceback(exc: BaseException, model_file: str) -> tuple[str, str, str]:
    """``(where, code, traceback)`` of ``exc`` in the user's terms: the line of the model file
    that raised (or called what raised), its source, and the traceback without runner frames."""
    frames = user_frames(exc)
    for frame in frames:
        frame.filename = _shown_path(frame.filename)
    model = _shown_path(model_file)
    where = code = ""
    in_model = [frame for frame in frames if frame.filename == model]
    if in_model:
        last = in_model[-1]
        where, code = f"{model}, line {last.lineno}, in {last.name}", (last.line or "").strip()
    elif isinstance(exc, SyntaxError) and exc.lineno:
        where, code = f"{model}, line {exc.lineno}", (exc.text or "").strip()
    runtime = [frame for frame in frames if frame.filename.startswith("proxymod" + os.sep)]
    shown = [frame for frame in frames if frame not in runtime]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(shown)]
    if runtime:
        lines.append(f"  ... {len(runtime)} frame(s) in proxymod, the runtime the models import\n")
    lines += traceback.format_exception_only(type(exc), exc)
    return where, code, "".join(lines) if frames else "".join(lines[-1:])


def _failed(exc: BaseException, code: int, what: str, model_file: str) -> int:
    """Print the user's traceback, then the marker; a resource limit takes precedence."""
    where = source = text = ""
    with contextlib.suppress(Exception):  # may fail under the memory limit; the marker says it
        where, source, text = user_traceback(exc, model_file)
        sys.stderr.write(text)
    limit = limit_exit_code(exc)
    if limit is not None:
        return report(limit[0], "limit:" + limit[1], describe_exception(exc), where=where)
    facts = {"where": where, "source": source, "traceback": text}
    return report(code, what, describe_exception(exc), **facts)


def load_callable(model_file: str, name: str) -> Callable[..., Any] | str:
    """The callable ``name`` of the module at ``model_file``, or text saying why there is none."""
    spec = importlib.util.spec_from_file_location(name, model_file)
    if spec is None or spec.loader is None:
        return f"{model_file} cannot be loaded as a Python module"
    module = importlib.util.module_from_spec(spec)
    # Registering lets dataclasses and pickle find the module; never shadow a real module.
    if name not in sys.modules and name not in sys.stdlib_module_names:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    target = getattr(module, name, None)
    if target is None:
        return f"{os.path.basename(model_file)} defines no callable named {name!r}"
    if not callable(target):
        return (
            f"{name!r} in {os.path.basename(model_file)} is a {type(target).__name__}, not callable"
        )
    return target  # type: ignore[no-any-return]


def main(argv: Sequence[str]) -> int:
    """Run the model; return the exit status (a model's own exit leaves from inside)."""
    try:
        options = _parser().parse_args(argv)
    except SystemExit:
        return report(EXIT_USAGE, "usage", "run_model.py was started with invalid arguments")
    global _report_fd, _tmp_mb
    _tmp_mb = options.tmp_mb
    if options.report_fd is not None:
        try:
            os.set_inheritable(options.report_fd, False)  # not for the programs a model runs
            os.set_blocking(options.report_fd, False)  # a model filling it cannot block us
            _report_fd = options.report_fd
        except OSError as exc:
            return report(EXIT_USAGE, "usage", f"the report descriptor is unusable: {exc}")
    runtime_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, runtime_dir)
    sys.dont_write_bytecode = True
    try:
        apply_limits(options)
        if options.seccomp_fd is not None:
            install_seccomp(options.seccomp_fd)
        os.chdir(options.work_dir)
        os.environ["PWD"] = options.work_dir  # bwrap sets it to where it started
    except (OSError, ValueError) as exc:
        return report(EXIT_USAGE, "usage", f"cannot prepare the model process: {exc}")
    try:
        target = load_callable(options.model_file, options.name)
    except Exception as exc:
        return _failed(exc, EXIT_IMPORT_FAILED, "import", options.model_file)
    if isinstance(target, str):
        return report(EXIT_NO_CALLABLE, "no_callable", target)
    runner_pid = os.getpid()
    try:
        target(*[str(path) for path in options.ini_paths])
    except Exception as exc:
        if os.getpid() != runner_pid:  # a process the model forked: only the runner reports
            os._exit(EXIT_RAISED)
        return _failed(exc, EXIT_RAISED, "raised", options.model_file)
    with contextlib.suppress(Exception):  # the model's output stream is its own business
        sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
