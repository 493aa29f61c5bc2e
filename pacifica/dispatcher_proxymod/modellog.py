"""Each model's own stdout and stderr: kept apart, copied into the combined logs, tailed.

A model writes ``logs/<model>.stdout.log`` and ``logs/<model>.stderr.log`` in the result tree.
After it ran (and every process it started is gone), :func:`collect` reads each file through
a descriptor that refuses links and anything but a regular file with one name, appends it to
the combined ``stdout.log``/``stderr.log`` of the seed's layout, and keeps the last
``DISPATCHER_LOG_TAIL_KB`` KiB for the task store, so ``GET /logs/<id>`` serves it later.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

LOGS_DIR = "logs"
STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class ModelLog:
    """The kept end of one model's output stream."""

    model: str
    stream: str  #: "stdout" or "stderr"
    text: str
    truncated: bool = False  #: the stream was longer than what is kept


def model_log_path(result_dir: Path, model: str, stream: str) -> Path:
    """Where a model's stream is written in the result tree."""
    return result_dir / LOGS_DIR / f"{model}.{stream}.log"


def _open_regular(path: Path, flags: int) -> int | None:
    """A descriptor of ``path`` if it is a regular file with one name (no link), else None."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd


def collect(result_dir: Path, model: str, stream: str, tail_bytes: int) -> ModelLog:
    """Append the model's ``stream`` to the combined log and return its tail."""
    source = _open_regular(model_log_path(result_dir, model, stream), os.O_RDONLY)
    if source is None:
        return ModelLog(model, stream, f"[the {stream} log of {model} was not a regular file]\n")
    try:
        size = os.fstat(source).st_size
        combined = _open_regular(
            result_dir / f"{stream}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT
        )
        if combined is not None:
            try:
                _copy(source, combined, size)
            finally:
                os.close(combined)
        start = max(0, size - tail_bytes)
        tail = os.pread(source, size - start, start)
    finally:
        os.close(source)
    # no NUL: PostgreSQL text cannot hold it
    text = tail.decode("utf-8", "replace").replace("\x00", "\ufffd")
    return ModelLog(model, stream, text, truncated=start > 0)


def _copy(source: int, target: int, size: int) -> None:
    offset = 0
    while offset < size:
        chunk = os.pread(source, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        os.write(target, chunk)
        offset += len(chunk)
