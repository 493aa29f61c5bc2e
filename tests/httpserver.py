"""A real HTTP server for tests: the WSGI app under the service's own server (waitress, as
``pacifica-dispatcher-proxymod`` runs it) on a free loopback port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cherrypy

from pacifica.dispatcher_proxymod.server import WaitressServer
from pacifica.dispatcher_proxymod.settings import HttpSettings, Settings


def start_engine() -> None:
    """Start CherryPy's engine without its own HTTP server (as under any WSGI server)."""
    if cherrypy.engine.state != cherrypy.engine.states.STARTED:
        cherrypy.config.update({"engine.autoreload.on": False, "log.screen": False})
        cherrypy.server.unsubscribe()
        cherrypy.engine.start()


@contextmanager
def serving(app: Any, http: HttpSettings | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL."""
    start_engine()
    config = getattr(app, "config", {}).get("/", {})
    max_body = config.get("request.body.maxbytes", Settings().max_body_bytes)
    server = WaitressServer(app, "127.0.0.1", 0, http or HttpSettings(threads=8), max_body)
    bound = server.bind()
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    host, port = bound.socket.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        thread.join(timeout=10)
        close = getattr(app, "close", None)  # the application's intake and publisher
        if close is not None:
            close()
