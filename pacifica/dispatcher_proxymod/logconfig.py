"""How every process logs: one place for the web server, the worker and ``standalone``.

``DISPATCHER_LOG_FORMAT=text`` (the default) writes one readable line per record;
``json`` one JSON object per line with ``time``, ``level``, ``logger``, ``task_id``,
``event_id`` and ``message`` (plus ``exception`` when there is one). The task and event of the
work at hand come from a context variable (:func:`task_context`), so every line logged while a
task is being received or run names it, whatever module logs it.

Celery's own "Task ... succeeded" line is dropped: the Celery task always returns normally,
even for a task that failed, and :mod:`execution` logs the line that ends a task, with its
state and reason.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from .logwriter import BufferedLogHandler
from .quiet import QuietFilter, secrets_of
from .settings import Settings


@dataclass(frozen=True)
class TaskContext:
    """The task (and its event) the current code works on."""

    task_id: str | None = None
    event_id: str | None = None


_NO_TASK = TaskContext()
_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "dispatcher_task", default=None
)


@contextmanager
def task_context(task_id: str | None, event_id: str | None = None) -> Iterator[None]:
    """Name ``task_id`` (and ``event_id``) in every record logged inside the block."""
    token = _current.set(TaskContext(task_id, event_id))
    try:
        yield
    finally:
        _current.reset(token)


def current() -> TaskContext:
    """The task the current code works on (fields None outside a task)."""
    return _current.get() or _NO_TASK


class TaskFilter(logging.Filter):
    """Puts ``task_id`` and ``event_id`` on every record (None outside a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current()
        if getattr(record, "task_id", None) is None:
            record.task_id = context.task_id or _celery_task_id(record)
        if getattr(record, "event_id", None) is None:
            record.event_id = context.event_id
        return True


def _celery_task_id(record: logging.LogRecord) -> str | None:
    """Celery's own task lines carry the task id in ``data``; ours is the same id."""
    data = getattr(record, "data", None)
    task_id = data.get("id") if isinstance(data, dict) else None
    return task_id if isinstance(task_id, str) else None


class CelerySuccessFilter(logging.Filter):
    """Drops Celery's "Task ... succeeded" line, which it writes for tasks that failed too."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "celery.app.trace" and " succeeded in " in str(record.msg))


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> [task=<id>] [event=<id>]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        first, newline, rest = line.partition("\n")
        task_id = getattr(record, "task_id", None)
        event_id = getattr(record, "event_id", None)
        if task_id and task_id not in first:
            first += f" task={task_id}"
        if event_id:
            first += f" event={json.dumps(event_id)}"
        return first + newline + rest


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "task_id": getattr(record, "task_id", None),
            "event_id": getattr(record, "event_id", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, default=str)


#: The handler :func:`configure` installed (replaced on a second call).
_installed: logging.Handler | None = None


def configure(
    settings: Settings, level: int | str | None = None, buffered: bool = False
) -> logging.Handler:
    """Send every record of this process to stderr in the configured format (at ``level``,
    by default ``DISPATCHER_LOG_LEVEL``), never a body or a credential (quiet.py).

    ``buffered``: lines are written by a thread of their own within 0.1 s, warnings at once
    (logwriter.py; the web server, whose request threads would otherwise queue for stderr).
    """
    global _installed
    handler: logging.StreamHandler[TextIO] = (
        BufferedLogHandler(sys.stderr) if buffered else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(QuietFilter(secrets_of(settings)))
    handler.addFilter(TaskFilter())
    handler.addFilter(CelerySuccessFilter())
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        if isinstance(_installed, BufferedLogHandler):
            _installed.close()  # its lines written, its thread stopped
    for old in list(root.handlers):  # e.g. a basicConfig() of an earlier step
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level.upper())
    _installed = handler
    logging.captureWarnings(True)  # e.g. Celery's warning about running as root
    return handler


def flush() -> None:
    """Write every line the installed handler still holds (for an exit that skips Python's own
    clean-up: CherryPy's ``os._exit`` when a start is interrupted)."""
    if _installed is not None:
        _installed.flush()
