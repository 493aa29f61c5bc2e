"""The service's own resources, open without credentials: ``/health`` and ``/openapi.json``."""

from __future__ import annotations

import cherrypy
from celery import Celery

from .. import openapi, store
from ..sandbox import sandbox_controls
from .errors import json_body, only_get


class ServiceResources:
    """``GET /health``, ``GET /openapi.json``."""

    def __init__(self, celery_app: Celery) -> None:
        self.celery_app = celery_app

    @cherrypy.expose
    def health(self) -> bytes:
        """``GET /health``: 200 when the database and the broker answer, else 503."""
        wrong_method = only_get()
        if wrong_method is not None:
            return wrong_method
        checks: dict[str, str] = {}
        for name, check in (("database", store.ping), ("broker", self._ping_broker)):
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {exc}"
        healthy = all(value == "ok" for value in checks.values())
        cherrypy.response.status = 200 if healthy else 503
        sandbox = sandbox_controls(self.celery_app.conf.dispatcher_settings)
        return json_body(
            {"status": "ok" if healthy else "unavailable", **checks, "sandbox": sandbox}
        )

    def _ping_broker(self) -> None:
        with self.celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)

    @cherrypy.expose
    def openapi_json(self) -> bytes:
        """``GET /openapi.json``: the OpenAPI 3 description of this API."""
        wrong_method = only_get()
        if wrong_method is not None:
            return wrong_method
        return json_body(openapi.description())
