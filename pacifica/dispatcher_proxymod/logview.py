"""A task's kept model logs as text: one code path for ``GET /logs/<id>`` and ``logs ID``.

All of a task's logs come in run order, each under a ``==> <model> <stream> <==`` header
(the way ``tail`` shows several files); naming one model and one stream gives that text alone,
byte for byte as kept, for scripts.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import store
from .errors import DispatcherError
from .modellog import STREAMS, ModelLog


class LogNotFound(DispatcherError):
    """No such task, or no such model in it (HTTP 404)."""


class BadLogRequest(DispatcherError):
    """A parameter that is not one we understand (HTTP 422); ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def task_logs(
    task_id: str, model: str | None = None, stream: str | None = None, tail_kb: int = 64
) -> str:
    """The kept logs of the task (raises :class:`LogNotFound`, :class:`BadLogRequest`)."""
    if stream is not None and stream not in STREAMS:
        raise BadLogRequest("stream", f"stream must be one of {', '.join(STREAMS)}, not {stream!r}")
    if store.get_task(task_id) is None:
        raise LogNotFound(f"no task {task_id}")
    return render(store.logs_of(task_id), task_id, model, stream, tail_kb)


def render(
    logs: Sequence[ModelLog], task_id: str, model: str | None, stream: str | None, tail_kb: int
) -> str:
    """The text of ``logs``, filtered by ``model`` and ``stream``."""
    if model is not None:
        names = list(dict.fromkeys(entry.model for entry in logs))
        if model not in names:
            known = ", ".join(names) or "none kept yet"
            raise LogNotFound(f"task {task_id} has no logs of model {model!r} (models: {known})")
    chosen = [
        entry
        for entry in logs
        if (model is None or entry.model == model) and (stream is None or entry.stream == stream)
    ]
    if model is not None and stream is not None:
        return "".join(entry.text for entry in chosen)
    parts = []
    for entry in chosen:
        parts.append(f"==> {entry.model} {entry.stream} <==\n")
        if entry.truncated:
            parts.append(f"[... only the last {tail_kb} KiB of this stream are kept ...]\n")
        text = entry.text
        parts.append(text if not text or text.endswith("\n") else text + "\n")
    return "".join(parts)
