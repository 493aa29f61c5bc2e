"""The seed's entry points, importable without connecting to anything.

    celery -A "pacifica.dispatcher_proxymod.__main__:celery_app" worker -l info
    python3 -m "pacifica.dispatcher_proxymod.__main__" [--host H] [--port P] [--config FILE]

``application`` is the WSGI app (settings are read on its first request), ``celery_app`` the
Celery app (settings read when Celery first needs them), ``ReceiveTaskModel`` the task row.
"""

from __future__ import annotations

import sys

import cherrypy

from .cli import STOP_AFTER_SERVER, main
from .logconfig import configure as configure_logging
from .queue import create_celery_app
from .settings import load_settings
from .store import Task as ReceiveTaskModel
from .web import LazyApplication, create_app

__all__ = ["ReceiveTaskModel", "application", "celery_app", "main"]

celery_app = create_celery_app()


def _build_application() -> cherrypy.Application:
    settings = load_settings()
    configure_logging(settings)
    app = create_app(settings)
    # the intake finishes its work (writes and publishes what it holds) when the engine stops
    cherrypy.engine.subscribe("stop", app.close, priority=STOP_AFTER_SERVER)
    return app


application = LazyApplication(_build_application)

if __name__ == "__main__":
    sys.exit(main())
