"""The HTTP API (CherryPy): receive events, show tasks. No business logic lives here.

``POST /receive`` answers 2xx to every CloudEvent it can parse, because Pacifica Notifications
disables a subscription on any other answer: a new task gets 202, a repeated delivery 200 with
the first task's id, an event no route matches is recorded as ``422 Unprocessable Entity``
(and still answered 202). Only a body that is no CloudEvent gets 400, a body over the limit 413,
a missing or wrong credential 401, and a database that cannot record the event 503.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import cherrypy
import peewee
from celery import Celery

from . import openapi, store
from .errors import InvalidEvent
from .events import parse_http
from .queue import publish
from .routing import ROUTE_NAME, quick_mismatch, subscription_expression
from .settings import Settings
from .states import TaskStatus

log = logging.getLogger(__name__)

JSON = "application/json"
#: Bodies larger than this are parsed one at a time, to bound the web process's memory.
LARGE_BODY_BYTES = 256 * 1024
#: The highest page number ``GET /`` accepts (keeps the SQL offset a 64-bit integer).
MAX_PAGE = 1_000_000_000


def _json_body(payload: Any) -> bytes:
    cherrypy.response.headers["Content-Type"] = JSON
    return json.dumps(payload).encode("utf-8")


def _error(status: int, error: str, message: str, **extra: Any) -> bytes:
    cherrypy.response.status = status
    return _json_body({"error": error, "message": message, **extra})


def json_error_page(status: str, message: str, traceback: str, version: str) -> str:
    """CherryPy's error page, as JSON and never with a traceback."""
    cherrypy.response.headers["Content-Type"] = JSON
    code, _, reason = status.partition(" ")
    return json.dumps({"error": reason or status, "message": message, "status": int(code)})


def _method_not_allowed(allowed: str, message: str) -> bytes:
    cherrypy.response.headers["Allow"] = allowed
    return _error(405, "MethodNotAllowed", message)


def _parse_task_id(task_id: str) -> str | None:
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        return None


class Api:
    """The resources of the service, mounted at ``/``."""

    def __init__(self, settings: Settings, celery_app: Celery) -> None:
        self.settings = settings
        self.celery_app = celery_app
        self._large_bodies = threading.Lock()

    @cherrypy.expose
    def index(self, page: str = "1", size: str | None = None) -> bytes:
        """``GET /``: the tasks, newest first, one page at a time."""
        if cherrypy.request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET, HEAD", "use GET")
        denied = self._authenticate()
        if denied is not None:
            return denied
        try:  # a repeated parameter arrives as a list: TypeError
            page_number = int(page)
            page_size = int(size) if size is not None else self.settings.page_size
        except (ValueError, TypeError):
            return _error(422, "InvalidParameter", "page and size must be single integers")
        if not 1 <= page_number <= MAX_PAGE or not 1 <= page_size <= 1000:
            return _error(422, "InvalidParameter", f"1 <= page <= {MAX_PAGE} and 1 <= size <= 1000")
        tasks, total = store.list_tasks(page_number, page_size)
        more = page_number * page_size < total
        return _json_body(
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
        task = self._task(task_id, rest)
        if isinstance(task, bytes):
            return task
        return _json_body(task.status)

    @cherrypy.expose
    def get(self, task_id: str = "", *rest: str) -> bytes:
        """``GET /get/<id>``: the whole task record."""
        task = self._task(task_id, rest)
        if isinstance(task, bytes):
            return task
        return _json_body(task.to_record())

    def _task(self, task_id: str, rest: tuple[str, ...]) -> store.Task | bytes:
        if cherrypy.request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET, HEAD", "use GET")
        denied = self._authenticate()
        if denied is not None:
            return denied
        if rest or not task_id:
            return _error(404, "NotFound", "use /status/<task id> or /get/<task id>")
        parsed = _parse_task_id(task_id)
        if parsed is None:
            return _error(422, "MalformedTaskId", f"{task_id!r} is not a task id (a UUID)")
        task = store.get_task(parsed)
        if task is None:
            return _error(404, "NotFound", f"no task {parsed}")
        return task

    @cherrypy.expose
    def health(self) -> bytes:
        """``GET /health``: 200 when the database and the broker answer, else 503."""
        if cherrypy.request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET, HEAD", "use GET")
        checks: dict[str, str] = {}
        for name, check in (("database", store.ping), ("broker", self._ping_broker)):
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {exc}"
        healthy = all(value == "ok" for value in checks.values())
        cherrypy.response.status = 200 if healthy else 503
        return _json_body({"status": "ok" if healthy else "unavailable", **checks})

    def _ping_broker(self) -> None:
        with self.celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)

    @cherrypy.expose
    def openapi_json(self) -> bytes:
        """``GET /openapi.json``: the OpenAPI 3 description of this API."""
        if cherrypy.request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET, HEAD", "use GET")
        return _json_body(openapi.description())

    @cherrypy.expose
    def receive(self) -> bytes:
        """``POST /receive``: record a CloudEvent as a task and queue it."""
        request = cherrypy.request
        if request.method != "POST":
            cherrypy.response.headers["Allow"] = "POST"
            return _error(405, "MethodNotAllowed", "POST a CloudEvent to /receive")
        denied = self._authenticate()
        if denied is not None:
            return denied
        header = request.headers.get("Content-Length", "")
        length = int(header) if header.isdigit() else None  # unknown: treated as large
        if length is not None and length > self.settings.max_body_bytes:
            return _error(
                413, "PayloadTooLarge", f"the body is over {self.settings.max_body_bytes} bytes"
            )
        large = length is None or length > LARGE_BODY_BYTES
        # a parsed event takes several times its body in memory: large ones go one at a time
        with self._large_bodies if large else contextlib.nullcontext():
            return self._receive(request)

    def _receive(self, request: Any) -> bytes:
        body = request.body.read()
        try:
            event = parse_http(dict(request.headers), body)
        except InvalidEvent as exc:
            return _error(400, "InvalidEvent", str(exc), problems=exc.problems)
        del body
        # the cheap checks here; the worker runs the full jsonpath2 match before any work
        reasons = quick_mismatch(event, self.settings)
        try:
            if reasons:
                recorded = store.record_event(
                    event, TaskStatus.UNPROCESSABLE, reason="; ".join(reasons)
                )
            else:
                recorded = store.record_event(event, TaskStatus.ACCEPTED, route=ROUTE_NAME)
        except (peewee.DataError, ValueError) as exc:  # e.g. NUL or too long for PostgreSQL
            problem = f"the task store cannot keep this event: {str(exc).strip()}"
            return _error(400, "InvalidEvent", problem, problems=[problem])
        except peewee.PeeweeException as exc:
            log.error("could not record event %s from %s: %s", event.id, event.source, exc)
            cherrypy.response.headers["Retry-After"] = "5"
            return _error(503, "DatabaseUnavailable", "the task store cannot record events now")
        task = recorded.task
        if recorded.created and not reasons:
            publish(self.celery_app, task.id)
        cherrypy.response.status = 202 if recorded.created else 200
        cherrypy.response.headers["Location"] = f"/get/{task.id}"
        return _json_body(
            {"taskID": task.id, "status": task.status, "duplicate": not recorded.created}
        )

    def _authenticate(self) -> bytes | None:
        """None when the request may go on; else the 401 answer (every endpoint but /health
        and /openapi.json: the tasks name submitters, projects, files and failures)."""
        settings = self.settings
        if settings.auth == "none":
            return None
        header = cherrypy.request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        token = (settings.auth_token or "").encode()
        if (
            settings.auth == "bearer"
            and scheme.lower() == "bearer"
            and hmac.compare_digest(credentials.strip().encode(), token)
        ):
            return None
        if settings.auth == "basic" and scheme.lower() == "basic":
            try:
                user, _, password = (
                    base64.b64decode(credentials, validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            user_ok = hmac.compare_digest(user.encode(), (settings.auth_username or "").encode())
            pass_ok = hmac.compare_digest(
                password.encode(), (settings.auth_password or "").encode()
            )
            if user_ok and pass_ok:
                return None
        challenge = "Bearer" if settings.auth == "bearer" else 'Basic realm="dispatcher"'
        cherrypy.response.headers["WWW-Authenticate"] = challenge
        path = cherrypy.request.path_info
        return _error(401, "Unauthorized", f"{path} needs {settings.auth} credentials")


def app_config(settings: Settings) -> dict[str, dict[str, Any]]:
    """The CherryPy application config: JSON errors, no tracebacks, the body limit, raw bodies."""
    return {
        "/": {
            "request.show_tracebacks": False,
            "request.show_mismatched_params": False,
            "error_page.default": json_error_page,
            "request.body.maxbytes": settings.max_body_bytes,
            # no form or multipart parsing: /receive reads every body itself
            "request.body.processors": {},
            "tools.encode.on": False,
            "tools.trailing_slash.on": False,
        }
    }


def create_app(settings: Settings, celery_app: Celery) -> cherrypy.Application:
    """The WSGI application; opens the task store (and creates its table) first."""
    subscription_expression(settings)  # a bad DISPATCHER_ACCEPTED_SOURCES fails now, not later
    store.open_database(settings)
    return cherrypy.Application(Api(settings, celery_app), "", app_config(settings))


class LazyApplication:
    """A WSGI callable that builds the real application on its first request.

    Lets ``__main__`` expose ``application`` without connecting to anything at import.
    """

    def __init__(self, factory: Callable[[], cherrypy.Application]) -> None:
        self._factory = factory
        self._app: cherrypy.Application | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._app is None:
            self._app = self._factory()
        return self._app(environ, start_response)
