"""``POST /retry/<id>`` and ``POST /cancel/<id>``: an operator's retry and cancel over HTTP.

202 when accepted, 409 (with the reason) when the task's state does not allow it, 404 for an
unknown task, 422 for a malformed id, 401 without the credentials reads need.
"""

from __future__ import annotations

import cherrypy
from celery import Celery

from .. import control
from ..errors import TaskConflict, TaskNotFound
from ..settings import Settings
from .auth import authenticate, requester
from .errors import error, json_body, method_not_allowed
from .tasks import parse_task_id


class TaskControl:
    """``POST /retry/<id>``, ``POST /cancel/<id>``."""

    def __init__(self, settings: Settings, celery_app: Celery) -> None:
        self.settings = settings
        self.celery_app = celery_app

    @cherrypy.expose
    def retry(self, task_id: str = "", *rest: str) -> bytes:
        """``POST /retry/<id>``: run a failed, rejected or cancelled task again."""
        parsed = self._task_id(task_id, rest, "retry")
        if isinstance(parsed, bytes):
            return parsed
        try:
            retried = control.retry(self.celery_app, parsed)
        except (TaskNotFound, TaskConflict) as exc:
            return _refusal(exc)
        cherrypy.response.status = 202
        cherrypy.response.headers["Location"] = f"/get/{parsed}"
        return json_body({"taskID": retried.task_id, "attempt": retried.attempt})

    @cherrypy.expose
    def cancel(self, task_id: str = "", *rest: str) -> bytes:
        """``POST /cancel/<id>``: cancel a waiting or running task."""
        parsed = self._task_id(task_id, rest, "cancel")
        if isinstance(parsed, bytes):
            return parsed
        try:
            cancelled = control.cancel(parsed, requester(self.settings))
        except (TaskNotFound, TaskConflict) as exc:
            return _refusal(exc)
        cherrypy.response.status = 202
        cherrypy.response.headers["Location"] = f"/get/{parsed}"
        return json_body(
            {
                "taskID": cancelled.task_id,
                "state": cancelled.state.value,
                "reason": cancelled.reason,
            }
        )

    def _task_id(self, task_id: str, rest: tuple[str, ...], verb: str) -> str | bytes:
        if cherrypy.request.method != "POST":
            return method_not_allowed("POST", f"POST to /{verb}/<task id>")
        denied = authenticate(self.settings)
        if denied is not None:
            return denied
        if rest or not task_id:
            return error(404, "NotFound", f"use /{verb}/<task id>")
        parsed = parse_task_id(task_id)
        if parsed is None:
            return error(422, "MalformedTaskId", f"{task_id!r} is not a task id (a UUID)")
        return parsed


def _refusal(exc: TaskNotFound | TaskConflict) -> bytes:
    if isinstance(exc, TaskNotFound):
        return error(404, "NotFound", str(exc))
    return error(409, "Conflict", str(exc), state=exc.state)
