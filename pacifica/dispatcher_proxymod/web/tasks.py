"""The read API: ``GET /`` (the tasks, a page at a time), ``/status/<id>`` and ``/get/<id>``."""

from __future__ import annotations

import uuid

import cherrypy

from .. import store
from ..errors import InvalidParameter
from ..settings import Settings
from .auth import authenticate
from .errors import error, json_body, only_get


def parse_task_id(task_id: str) -> str | None:
    """The canonical form of a task id (a UUID), or None when it is none."""
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        return None


def find_task(settings: Settings, task_id: str, rest: tuple[str, ...]) -> store.Task | bytes:
    """The task ``/<verb>/<task_id>`` names, or the error answer (401, 404, 422)."""
    denied = authenticate(settings)
    if denied is not None:
        return denied
    if rest or not task_id:
        return error(404, "NotFound", "use /status/<task id> or /get/<task id>")
    parsed = parse_task_id(task_id)
    if parsed is None:
        return error(422, "MalformedTaskId", f"{task_id!r} is not a task id (a UUID)")
    task = store.get_task(parsed)
    if task is None:
        return error(404, "NotFound", f"no task {parsed}")
    return task


class TaskReads:
    """``GET /``, ``GET /status/<id>``, ``GET /get/<id>``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cherrypy.expose
    def index(self, **params: str | list[str]) -> bytes:
        """``GET /``: the tasks a query finds (state, since, until, q), newest first, one page
        at a time; an unknown parameter or a bad value is 422 naming it."""
        wrong_method = only_get()
        if wrong_method is not None:
            return wrong_method
        denied = authenticate(self.settings)
        if denied is not None:
            return denied
        try:
            query = store.TaskQuery.from_params(params, self.settings.page_size)
        except InvalidParameter as exc:
            return error(422, "InvalidParameter", str(exc), parameter=exc.name)
        found = store.find_tasks(query)
        return json_body(
            {
                "tasks": [store.summary(task) for task in found.tasks],
                "page": query.page,
                "size": query.size,
                "total": found.total,
                "next": f"/?{query.params(query.page + 1)}" if found.more else None,
            }
        )

    @cherrypy.expose
    def status(self, task_id: str = "", *rest: str) -> bytes:
        """``GET /status/<id>``: the status string of one task."""
        task = only_get() or find_task(self.settings, task_id, rest)
        if isinstance(task, bytes):
            return task
        return json_body(task.status)

    @cherrypy.expose
    def get(self, task_id: str = "", *rest: str) -> bytes:
        """``GET /get/<id>``: the whole task record."""
        task = only_get() or find_task(self.settings, task_id, rest)
        if isinstance(task, bytes):
            return task
        return json_body(store.record(task))
