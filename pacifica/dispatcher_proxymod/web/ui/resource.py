"""The dashboard's CherryPy resource, mounted at ``/ui``: pages, static files, downloads.

``/ui/`` the runs list, ``/ui/task/<id>`` one run, ``/ui/task/<id>/file/<path>`` a result file
(local transfer only, as an attachment), ``/ui/static/<name>`` the stylesheet and the script.
Every page needs the API's credentials when ``DISPATCHER_AUTH`` is set.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import cherrypy
from celery import Celery
from markupsafe import Markup

from ... import control, store
from ...charts import Chart, render_svg
from ...errors import InvalidParameter, TaskConflict, TaskNotFound
from ...settings import Settings
from ...states import TaskState
from ...transfer.base import ResultFile, list_result_files, open_regular_file
from ..auth import authenticate, requester
from ..tasks import parse_task_id
from . import security, views

if TYPE_CHECKING:
    import jinja2

#: Result files served as text/plain; every other one as application/octet-stream.
TEXT_SUFFIXES = frozenset({".log", ".txt", ".csv", ".ini", ".json", ".md", ".py"})
#: How many tasks' drawn charts are kept (a task's charts change only when it runs again).
DRAWN_CACHE = 32
STATIC_FILES = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _environment() -> jinja2.Environment:
    # imported at the first page: a web process whose dashboard is never opened (most of them
    # only receive events) does not carry jinja2's 2 MiB
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pacifica.dispatcher_proxymod.web.ui", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment


def _static(name: str) -> bytes:
    return importlib.resources.files(__package__).joinpath("static", name).read_bytes()


class Dashboard:
    """``/ui/...``: the runs list, the run pages, their downloads and the static files."""

    def __init__(self, settings: Settings, celery_app: Celery) -> None:
        self.settings = settings
        self.celery_app = celery_app
        self._static = {name: _static(name) for name in STATIC_FILES}
        self._drawn: OrderedDict[tuple[str, object], list[Markup]] = OrderedDict()
        self._lock = threading.Lock()

    @functools.cached_property
    def templates(self) -> jinja2.Environment:
        """The pages' templates (made at the first page)."""
        return _environment()

    # -- helpers ---------------------------------------------------------------------------

    def _render(self, template: str, status: int = 200, **context: Any) -> bytes:
        security.page_headers()
        cherrypy.response.status = status
        cherrypy.response.headers["Content-Type"] = "text/html; charset=utf-8"
        api = cherrypy.request.script_name
        page = self.templates.get_template(template)
        return page.render(base=api + "/ui", api=api, **context).encode("utf-8")

    def _denied(self) -> bytes | None:
        denied = authenticate(self.settings)
        if denied is None:
            return None
        return self._render(
            "error.html",
            401,
            title="Sign in needed",
            message="This dashboard needs the service's credentials.",
        )

    def _not_found(self, message: str) -> bytes:
        return self._render("error.html", 404, title="Not found", message=message)

    # -- pages -----------------------------------------------------------------------------

    @cherrypy.expose
    def index(self, **params: Any) -> bytes:
        """``GET /ui/``: the runs ``GET /`` would list (same filters), with counts by state."""
        denied = self._denied()
        if denied is not None:
            return denied
        filters = {name: value for name, value in params.items() if value not in ("", [])}
        try:
            query = store.TaskQuery.from_params(filters, self.settings.page_size)
        except InvalidParameter as exc:
            query, problem = store.TaskQuery(size=self.settings.page_size), str(exc)
        else:
            problem = ""
        found = store.find_tasks(query)
        now = store.utcnow()
        rows = [views.row_of(task, now) for task in found.tasks]
        return self._render(
            "list.html",
            400 if problem else 200,
            title="Runs",
            rows=rows,
            counts=views.counts(store.counts_by_state(query)),
            query=query,
            filters=views.filter_form(query),
            problem=problem,
            total=found.total,
            pages=max(1, -(-found.total // query.size)),
            refresh=any(not row.state.final for row in rows),
        )

    @cherrypy.expose
    def task(self, task_id: str = "", *rest: str, **params: Any) -> bytes:
        """``GET /ui/task/<id>`` (the run page), ``/ui/task/<id>/file/<path>`` (a result file),
        ``POST /ui/task/<id>/retry`` and ``/cancel`` (the page's forms)."""
        denied = self._denied()
        if denied is not None:
            return denied
        parsed = parse_task_id(task_id)
        found = store.get_task(parsed) if parsed else None
        if found is None:
            return self._not_found(f"There is no run {task_id!r}.")
        if rest and rest[0] == "file" and len(rest) > 1:
            return self._download(found, PurePosixPath(*rest[1:]))
        if rest in (("retry",), ("cancel",)):
            return self._control(found, rest[0], params)
        if rest:
            return self._not_found("Use /ui/task/<id>.")
        notice = params.get("notice")
        return self._run_page(found, notice if isinstance(notice, str) else "")

    def _control(self, task: store.Task, action: str, params: dict[str, Any]) -> bytes:
        """Retry or cancel from the run page's form (POST, with this browser's CSRF token)."""
        if cherrypy.request.method != "POST":
            cherrypy.response.headers["Allow"] = "POST"
            return self._render(
                "error.html", 405, title="Use the form", message="Use the buttons on the run page."
            )
        if not security.csrf_ok(params.get(security.CSRF_FIELD)):
            return self._render(
                "error.html",
                403,
                title="Not done",
                message="The form expired or came from another site: reload the page.",
            )
        try:
            if action == "retry":
                retried = control.retry(self.celery_app, task.id)
                notice = f"Queued again as attempt {retried.attempt}."
            else:
                cancelled = control.cancel(task.id, f"{requester(self.settings)} (dashboard)")
                notice = (
                    "Cancelled."
                    if cancelled.state is TaskState.CANCELLED
                    else "Cancelling: its worker stops it within seconds."
                )
        except (TaskConflict, TaskNotFound) as exc:
            notice = f"Not done: {exc}"
        raise cherrypy.HTTPRedirect(
            f"{cherrypy.request.script_name}/ui/task/{task.id}?notice={quote(notice)}", 303
        )

    def _run_page(self, task: store.Task, notice: str = "") -> bytes:
        event = _json_object(task.event_json)
        facts = views.upload_facts(event.get("data"))
        models = _json_list(task.models_json)
        configs, others = views.config_views(facts.key_values)
        state = views.state_of(task)
        charts = self._charts(task)
        return self._render(
            "task.html",
            title=f"Run {task.event_id}",
            task=task,
            state=state,
            reason=views.reason_of(task),
            event=event,
            facts=facts,
            received=views.time_text(task.created),
            finished=views.time_text(task.finished),
            timeline=views.timeline(task, models),
            models=views.model_views(models, store.logs_of(task.id)),
            configs=configs,
            other_key_values=others,
            charts=charts,
            files=self._result_files(task),
            traceback=task.error_traceback or "",
            attempts=views.attempt_views(store.history(task.id)),
            stage=task.stage or "",
            result_link=views.transaction_link(task.source, task.result_transaction),
            notice=views.one_line(notice, 200),
            can_retry=state.retryable,
            can_cancel=not state.final,
            csrf_field=security.CSRF_FIELD,
            csrf_token=security.csrf_token(),
            refresh=not state.final,
        )

    def _charts(self, task: store.Task) -> list[Markup]:
        """The task's charts as inline SVG; drawn once per version of the task, then cached."""
        key = (task.id, task.updated)
        cached = self._drawn.get(key)
        if cached is None:
            cached = [
                Markup(render_svg(Chart.from_json(data)))  # noqa: S704 - ElementTree escaped it
                for data in store.charts_of(task.id)
            ]
            with self._lock:
                self._drawn[key] = cached
                while len(self._drawn) > DRAWN_CACHE:
                    self._drawn.popitem(last=False)
        return cached

    # -- result files ----------------------------------------------------------------------

    def _result_dir(self, task: store.Task) -> Path | None:
        """The task's result tree when this process can read it (local transfer)."""
        output_dir = self.settings.output_dir
        if self.settings.transfer != "local" or output_dir is None or not task.result_location:
            return None
        location = Path(task.result_location)
        try:
            inside = location.resolve().is_relative_to(output_dir.resolve())
        except OSError:
            return None
        return location if inside and location.is_dir() and not location.is_symlink() else None

    def _result_files(self, task: store.Task) -> list[ResultFile]:
        result_dir = self._result_dir(task)
        if result_dir is None:
            return []
        try:
            return list_result_files(result_dir)
        except Exception:  # gone or replaced since: no links, the page still shows
            return []

    def _download(self, task: store.Task, relative: PurePosixPath) -> bytes:
        files = {item.relative_path: item for item in self._result_files(task)}
        item = files.get(relative)
        if item is None:
            return self._not_found(f"Run {task.id} has no result file {str(relative)!r} here.")
        with open_regular_file(item.path) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                return self._not_found("That file is no longer a plain file.")
            content = handle.read()
        headers = cherrypy.response.headers
        # text stays text; anything else (HTML, SVG, script...) is only downloaded, never shown
        plain = relative.suffix.lower() in TEXT_SUFFIXES
        headers["Content-Type"] = (
            "text/plain; charset=utf-8" if plain else "application/octet-stream"
        )
        headers["Content-Security-Policy"] = security.DOWNLOAD_POLICY
        headers["X-Content-Type-Options"] = "nosniff"
        safe_name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in relative.name)
        headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
        return content

    # -- static ------------------------------------------------------------------------------

    @cherrypy.expose
    def static(self, name: str = "", *rest: str) -> bytes:
        """``GET /ui/static/<name>``: the stylesheet and the script (open, like /health)."""
        if rest or name not in STATIC_FILES:
            return self._not_found("No such file.")
        cherrypy.response.headers["Content-Type"] = STATIC_FILES[name]
        cherrypy.response.headers["Cache-Control"] = "public, max-age=300"
        cherrypy.response.headers["X-Content-Type-Options"] = "nosniff"
        return self._static[name]


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_list(text: str | None) -> list[Any]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
