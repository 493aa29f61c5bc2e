"""The read API: ``GET /`` (the tasks, a page at a time), ``/status/<id>`` and ``/get/<id>``."""

from __future__ import annotations

import uuid

import cherrypy

from .. import store
from ..settings import Settings
from .auth import authenticate
from .errors import error, json_body, only_get

#: The highest page number ``GET /`` accepts (keeps the SQL offset a 64-bit integer).
MAX_PAGE = 1_000_000_000


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
    def index(self, page: str = "1", size: str | None = None) -> bytes:
        """``GET /``: the tasks, newest first, one page at a time."""
        wrong_method = only_get()
        if wrong_method is not None:
            return wrong_method
        denied = authenticate(self.settings)
        if denied is not None:
            return denied
        try:  # a repeated parameter arrives as a list: TypeError
            page_number = int(page)
            page_size = int(size) if size is not None else self.settings.page_size
        except (ValueError, TypeError):
            return error(422, "InvalidParameter", "page and size must be single integers")
        if not 1 <= page_number <= MAX_PAGE or not 1 <= page_size <= 1000:
            return error(422, "InvalidParameter", f"1 <= page <= {MAX_PAGE} and 1 <= size <= 1000")
        tasks, total = store.list_tasks(page_number, page_size)
        more = page_number * page_size < total
        return json_body(
            {
                "tasks": [task.to_summary() for task in tasks],
                "page": page_number,
                "size": page_size,
                "total": total,
                "next": f"/?page={page_number + 1}&size={page_size}" if more else None,
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
        return json_body(task.to_record())
