"""``POST /receive``: record a CloudEvent as a task and queue it.

It answers 2xx to every CloudEvent it can parse, because Pacifica Notifications disables a
subscription on any other answer: a new task gets 202, a repeated delivery 200 with the first
task's id, an event no route matches is recorded as ``422 Unprocessable Entity`` (and still
answered 202). A refused upload that asks for proxymod and names its transaction is queued
instead: the worker finds the same problems, ends it ``422`` and uploads its report beside the
upload (proxymod/answer.py); the web process never talks to Pacifica itself. Only a body that
is no CloudEvent gets 400, a body over the limit 413, a missing or wrong credential 401, and a
database that cannot record the event 503.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import cherrypy
import peewee
from celery import Celery

from .. import store
from ..errors import InvalidEvent, UnprocessableEvent
from ..events import Event, parse_http, parse_upload
from ..logconfig import task_context
from ..proxymod.validate import request_problems
from ..queue import publish
from ..routing import ROUTE_NAME, asks_for_proxymod, quick_mismatch
from ..settings import Settings
from ..states import TaskStatus
from .auth import authenticate
from .errors import error, json_body

log = logging.getLogger(__name__)

#: Bodies larger than this are parsed one at a time, to bound the web process's memory.
LARGE_BODY_BYTES = 256 * 1024


class Receiver:
    """``POST /receive``."""

    def __init__(self, settings: Settings, celery_app: Celery) -> None:
        self.settings = settings
        self.celery_app = celery_app
        self._large_bodies = threading.Lock()

    @cherrypy.expose
    def receive(self) -> bytes:
        """``POST /receive``: record a CloudEvent as a task and queue it."""
        request = cherrypy.request
        if request.method != "POST":
            cherrypy.response.headers["Allow"] = "POST"
            return error(405, "MethodNotAllowed", "POST a CloudEvent to /receive")
        denied = authenticate(self.settings)
        if denied is not None:
            return denied
        header = request.headers.get("Content-Length", "")
        length = int(header) if header.isdigit() else None  # unknown: treated as large
        if length is not None and length > self.settings.max_body_bytes:
            return error(
                413, "PayloadTooLarge", f"the body is over {self.settings.max_body_bytes} bytes"
            )
        large = length is None or length > LARGE_BODY_BYTES
        # a parsed event takes several times its body in memory: large ones go one at a time
        with self._large_bodies if large else contextlib.nullcontext():
            return self._receive(request)

    def _receive(self, request: Any) -> bytes:
        body = request.body.read()
        log.debug("a body of %d bytes (its content is never logged)", len(body))
        try:
            event = parse_http(dict(request.headers), body)
        except InvalidEvent as exc:
            return error(400, "InvalidEvent", str(exc), problems=exc.problems)
        del body
        # the cheap checks here; the worker runs the full jsonpath2 match before any work
        reasons = quick_mismatch(event, self.settings)
        if reasons:  # refused: worth the full list of what to fix (pure Python, no jsonpath2)
            reasons = [
                str(problem) for problem in request_problems(event, self.settings)
            ] or reasons
        answered = bool(reasons) and _answerable(event, self.settings)
        try:
            if reasons and not answered:
                recorded = store.record_event(
                    event, TaskStatus.UNPROCESSABLE, reason="; ".join(reasons)
                )
            else:  # a refused one is queued for its report only: it has no route
                route = None if reasons else ROUTE_NAME
                recorded = store.record_event(event, TaskStatus.ACCEPTED, route=route)
        except (peewee.DataError, ValueError) as exc:  # e.g. NUL or too long for PostgreSQL
            problem = f"the task store cannot keep this event: {str(exc).strip()}"
            return error(400, "InvalidEvent", problem, problems=[problem])
        except peewee.PeeweeException as exc:
            log.error("could not record event %s from %s: %s", event.id, event.source, exc)
            cherrypy.response.headers["Retry-After"] = "5"
            return error(503, "DatabaseUnavailable", "the task store cannot record events now")
        task = recorded.task
        with task_context(task.id, event.id):
            if recorded.created and (answered or not reasons):
                publish(self.celery_app, task.id)
                log.info("task %s recorded and queued", task.id)
            elif recorded.created:
                log.info("task %s rejected: %s", task.id, "; ".join(reasons))
            else:
                log.info("task %s: repeated delivery, not run again", task.id)
        cherrypy.response.status = 202 if recorded.created else 200
        cherrypy.response.headers["Location"] = f"/get/{task.id}"
        return json_body(
            {"taskID": task.id, "status": task.status, "duplicate": not recorded.created}
        )


def _answerable(event: Event, settings: Settings) -> bool:
    """Whether a refused event gets a report: it asks for proxymod and names its transaction."""
    if not asks_for_proxymod(event, settings):
        return False
    try:
        return parse_upload(event.data).transaction_id is not None
    except UnprocessableEvent:
        return False
