"""``POST /receive``: record a CloudEvent as a task and queue it.

It answers 2xx to every CloudEvent it can parse, because Pacifica Notifications disables a
subscription on any other answer: a new task gets 202, a repeated delivery 200 with the first
task's id, an event no route matches is recorded as ``422 Unprocessable Entity`` (and still
answered 202). A refused upload that asks for proxymod and names its transaction is queued
instead: the worker finds the same problems, ends it ``422`` and uploads its report beside the
upload (proxymod/answer.py); the web process never talks to Pacifica itself. Only a body that
is no CloudEvent gets 400, a body over the limit 413, a missing or wrong credential 401, and a
database that cannot record the event 503.

:class:`Receiver` holds what happens to a body once it arrived, free of any HTTP framework; the
HTTP side (method, credentials, limits, reading the body, metrics, the access log) is the WSGI
fast path in front of the CherryPy application (fastpath.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import peewee

from .. import store
from ..errors import InvalidEvent, UnprocessableEvent
from ..events import LEGACY_VERSION, Event, parse_http, parse_upload
from ..logconfig import task_context
from ..proxymod.routing import ROUTE_NAME, asks_for_proxymod, quick_mismatch
from ..proxymod.validate import request_problems
from ..settings import Settings
from ..states import TaskStatus
from .errors import encode, error_document

log = logging.getLogger(__name__)

#: Bodies larger than this are parsed one at a time, to bound the web process's memory.
LARGE_BODY_BYTES = 256 * 1024

#: Seconds a client should wait before sending again when the store cannot record now.
RETRY_AFTER = "5"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status code, JSON body, extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def failure(status: int, error: str, message: str, **extra: object) -> Answer:
    """A JSON error answer (``{"error", "message", **extra}``)."""
    return Answer(status, error_document(error, message, **extra))


def invalid(problems: list[str], message: str) -> Answer:
    """400 for a body that is no CloudEvent (or that the store cannot keep)."""
    return failure(400, "InvalidEvent", message, problems=problems)


def unavailable() -> Answer:
    """503 with ``Retry-After``: the store cannot record events now."""
    body = error_document("DatabaseUnavailable", "the task store cannot record events now")
    return Answer(503, body, (("Retry-After", RETRY_AFTER),))


class Receiver:
    """What ``POST /receive`` does with a body that arrived within the limits.

    Rows are written by the process's one :class:`~.store.Intake` (group commit), whose
    ``on_committed`` (the web's :class:`~.publisher.CommitPublisher`) sends the new tasks'
    messages before their requests are woken, and tells each row whether they left
    (``Recorded.receipt``). So a 202 means "recorded and queued" (README) while one publish
    serves every request of the batch; a message that could not leave (the broker is down, or
    hangs past ``DISPATCHER_PUBLISH_TIMEOUT_SECONDS``) is recovery's, its queued mark taken back.
    """

    def __init__(self, settings: Settings, intake: store.Intake) -> None:
        self.settings = settings
        self.intake = intake

    def receive(self, headers: Mapping[str, str], read: Callable[[], bytes]) -> Answer:
        """Read the body (``read()``), parse, check, record and queue one event; the answer.

        The body is held here only (hence a reader, not the bytes): a large one is freed as
        soon as it was parsed.
        """
        body = read()
        log.debug("a body of %d bytes (its content is never logged)", len(body))
        text: bytes | str = body
        with contextlib.suppress(UnicodeDecodeError):  # else parse_http says where
            text = body.decode("utf-8")
        del body  # from here the body is held once, as text
        try:
            event = parse_http(headers, text)
        except InvalidEvent as exc:
            return invalid(exc.problems, str(exc))
        # a CloudEvents 0.1 document (Pacifica's) is kept as it came, not serialised again:
        # Event.from_json reads it as parse_http did
        stored = text if isinstance(text, str) and event.specversion == LEGACY_VERSION else None
        del text
        # the cheap checks here; the worker runs the full jsonpath2 match before any work
        reasons = quick_mismatch(event, self.settings)
        if reasons:  # refused: worth the full list of what to fix (pure Python, no jsonpath2)
            reasons = [
                str(problem) for problem in request_problems(event, self.settings)
            ] or reasons
        answered = bool(reasons) and _answerable(event, self.settings)
        if reasons and not answered:
            status, route, reason = TaskStatus.UNPROCESSABLE, None, "; ".join(reasons)
        else:  # a refused one is queued for its report only: it has no route
            status, route, reason = TaskStatus.ACCEPTED, None if reasons else ROUTE_NAME, None
        # marked queued in the INSERT: the publisher sends it right after the commit and
        # takes the mark back if it cannot (publisher.py)
        queued = status is TaskStatus.ACCEPTED
        row = store.new_task(event, status, route, reason, event_json=stored, queued=queued)
        event_id, source = event.id, event.source
        del event  # a large event is kept once from here: as the row's JSON
        try:
            recorded = self.intake.record(row)
        except store.IntakeBusy as exc:
            log.warning("could not record event %s from %s now: %s", event_id, source, exc)
            return unavailable()
        except (peewee.DataError, ValueError) as exc:  # e.g. NUL or too long for PostgreSQL
            problem = f"the task store cannot keep this event: {str(exc).strip()}"
            return invalid([problem], problem)
        except peewee.PeeweeException as exc:
            log.error("could not record event %s from %s: %s", event_id, source, exc)
            return unavailable()
        task = recorded.task
        with task_context(task.id, event_id):
            if recorded.created and row.status == TaskStatus.ACCEPTED.value:
                if recorded.receipt is True:
                    log.info("task %s recorded and queued", task.id)
                else:  # (logged by the publisher, once per outage)
                    log.info("task %s recorded; recovery will queue it", task.id)
            elif recorded.created:
                log.info("task %s rejected: %s", task.id, "; ".join(reasons))
            else:
                log.info("task %s: repeated delivery, not run again", task.id)
        return accepted(task.id, task.status, recorded.created)


def accepted(task_id: str, status: str, created: bool) -> Answer:
    """202 for a new task, 200 with the first task's id for a repeated delivery."""
    body = _ACCEPTED_SHAPE % (encode(task_id), _encoded_status(status), _DUPLICATE[not created])
    return Answer(202 if created else 200, body, (("Location", f"/get/{task_id}"),))


#: The answer to an event recorded, pre-encoded: ``{"taskID", "status", "duplicate"}``.
_ACCEPTED_SHAPE = b'{"taskID":%s,"status":%s,"duplicate":%s}'
_DUPLICATE = {True: b"true", False: b"false"}


@functools.lru_cache(maxsize=64)
def _encoded_status(status: str) -> bytes:
    return encode(status)


def _answerable(event: Event, settings: Settings) -> bool:
    """Whether a refused event gets a report: it asks for proxymod and names its transaction."""
    if not asks_for_proxymod(event, settings):
        return False
    try:
        return parse_upload(event.data).transaction_id is not None
    except UnprocessableEvent:
        return False
