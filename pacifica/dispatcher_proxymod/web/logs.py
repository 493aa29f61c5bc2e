"""``GET /logs/<id>``: each model's stdout and stderr as kept in the task store (text/plain).

``?model=NAME`` for one model, ``?stream=stdout|stderr`` for one stream. Errors are JSON and
the same as ``/get``'s: 404 for an unknown task (or model), 422 for a malformed id or parameter,
401 without the credentials reads need.
"""

from __future__ import annotations

from typing import Any

import cherrypy

from ..logview import BadLogRequest, LogNotFound, task_logs
from ..settings import Settings
from .errors import error, only_get
from .tasks import find_task

PARAMETERS = ("model", "stream")


class LogReads:
    """``GET /logs/<id>``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cherrypy.expose
    def logs(self, task_id: str = "", *rest: str, **params: Any) -> bytes:
        """``GET /logs/<id>[?model=NAME][&stream=stdout|stderr]``."""
        task = only_get() or find_task(self.settings, task_id, rest)
        if isinstance(task, bytes):
            return task
        for name, value in params.items():
            if name not in PARAMETERS:
                return error(422, "InvalidParameter", f"unknown parameter {name!r}", parameter=name)
            if not isinstance(value, str):
                return error(422, "InvalidParameter", f"{name} may be given once", parameter=name)
        try:
            text = task_logs(
                task.id, params.get("model"), params.get("stream"), self.settings.log_tail_kb
            )
        except BadLogRequest as exc:
            return error(422, "InvalidParameter", str(exc), parameter=exc.parameter)
        except LogNotFound as exc:
            return error(404, "NotFound", str(exc))
        cherrypy.response.headers["Content-Type"] = "text/plain; charset=utf-8"
        return text.encode("utf-8")
