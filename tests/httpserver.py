"""A real HTTP server for tests: the WSGI app under cheroot on a free loopback port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cherrypy
from cheroot import wsgi


def start_engine() -> None:
    """Start CherryPy's engine without its own HTTP server (as under any WSGI server)."""
    if cherrypy.engine.state != cherrypy.engine.states.STARTED:
        cherrypy.config.update({"engine.autoreload.on": False, "log.screen": False})
        cherrypy.server.unsubscribe()
        cherrypy.engine.start()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL."""
    start_engine()
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=8)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    host, port = server.bind_addr[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        thread.join(timeout=10)
