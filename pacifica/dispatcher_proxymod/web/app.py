"""The CherryPy application: the tree of resources, its config, the WSGI entry points.

Each path is one exposed method of a resource object (one module per concern: ``tasks``,
``control``, ``logs``, ``service``); the root only mounts them. ``POST /receive`` is served in
front of CherryPy by the WSGI fast path (fastpath.py, receive.py). No business logic lives in
``web``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cherrypy
from celery import Celery

from .. import store
from ..proxymod.routing import subscription_expression
from ..publisher import CommitPublisher
from ..queue import create_celery_app
from ..settings import Settings
from .control import TaskControl
from .errors import JsonErrorsRequest, json_error_page
from .fastpath import FastPathApplication, ReceiveEndpoint
from .logs import LogReads
from .metrics import PublisherCollector, WebMetrics
from .receive import Receiver
from .service import ServiceResources
from .tasks import TaskReads
from .ui.resource import Dashboard


class Api:
    """The resources of the service, mounted at ``/``: ``/<name>`` is the attribute ``name``."""

    def __init__(self, settings: Settings, celery_app: Celery) -> None:
        reads = TaskReads(settings)
        self.index = reads.index
        self.status = reads.status
        self.get = reads.get
        self.logs = LogReads(settings).logs
        control = TaskControl(settings, celery_app)
        self.retry = control.retry
        self.cancel = control.cancel
        service = ServiceResources(celery_app)
        self.health = service.health
        self.openapi_json = service.openapi_json
        self.web_metrics = WebMetrics()
        self.metrics = self.web_metrics.metrics
        if settings.ui:
            self.ui = Dashboard(settings, celery_app)


def app_config(settings: Settings, api: Api | None = None) -> dict[str, dict[str, Any]]:
    """The CherryPy application config: JSON errors, no tracebacks, the body limit, raw bodies
    (and, given the tree, its request counters)."""
    metrics: dict[str, Any] = {}
    if api is not None:
        metrics = {"tools.dispatcher_metrics.on": True}
        metrics["tools.dispatcher_metrics.recorder"] = api.web_metrics
    return {
        "/": {
            **metrics,
            "request.show_tracebacks": False,
            "request.show_mismatched_params": False,
            # CherryPy logs every request header (credentials too) with each 500 by default
            "tools.log_headers.on": False,
            "error_page.default": json_error_page,
            "request.body.maxbytes": settings.max_body_bytes,
            # no form or multipart parsing: /receive reads every body itself
            "request.body.processors": {},
            "tools.encode.on": False,
            "tools.trailing_slash.on": False,
        },
        # retry and cancel take no body: a bare ``curl -X POST`` (no Content-Length) is fine
        "/retry": {"request.process_request_body": False},
        "/cancel": {"request.process_request_body": False},
        # the dashboard's forms (retry, cancel) are small urlencoded bodies
        "/ui": {
            "request.body.processors": {
                "application/x-www-form-urlencoded": cherrypy._cpreqbody.process_urlencoded
            },
            "request.body.maxbytes": 16 * 1024,
        },
    }


def create_app(settings: Settings, celery_app: Celery | None = None) -> FastPathApplication:
    """The WSGI application (a CherryPy application with ``POST /receive`` served in front of
    it); opens the task store (and creates its table) first. ``celery_app``: the web's own by
    default, whose broker calls end after ``DISPATCHER_PUBLISH_TIMEOUT_SECONDS``."""
    subscription_expression(settings)  # a bad DISPATCHER_ACCEPTED_SOURCES fails now, not later
    store.open_database(settings)
    if celery_app is None:
        celery_app = create_celery_app(settings, settings.publish_timeout_seconds)
    api = Api(settings, celery_app)
    app = FastPathApplication(api, "", app_config(settings, api))
    app.request_class = JsonErrorsRequest
    # POST /receive: one writer (group commit) that publishes each batch it committed; its
    # rows are inserted marked queued (no UPDATE per batch); a web process that died between
    # a commit and its publish left such rows without a message: sent again now
    publisher = CommitPublisher(celery_app)
    api.web_metrics.registry.register(PublisherCollector(publisher))
    publisher.republish_recent(settings.requeue_after_seconds)
    intake = store.Intake.from_settings(settings, on_committed=publisher)
    receiver = Receiver(settings, intake)
    app.receive_endpoint = ReceiveEndpoint(settings, receiver, api.web_metrics, app.log)
    app.closing = (intake.close,)
    return app


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
