"""The dispatcher as it was served before waitress: CherryPy's own cheroot server, 16 threads.

The same application (``__main__:application``: settings from the environment), the server
settings the old ``cli.serve`` used (16 threads, listen backlog 128). Only for the A/B of
bench/slow_clients.py.

    .venv/bin/python bench/cheroot_dispatcher.py --port 8097
"""

from __future__ import annotations

import argparse

import cherrypy

from pacifica.dispatcher_proxymod.cli import limit_heap_growth
from pacifica.dispatcher_proxymod.settings import load_settings


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from pacifica.dispatcher_proxymod.queue import create_celery_app
    from pacifica.dispatcher_proxymod.web import create_app

    limit_heap_growth()
    settings = load_settings()
    app = create_app(settings, create_celery_app(settings))
    cherrypy.config.update(
        {
            "server.socket_host": args.host,
            "server.socket_port": args.port,
            "server.thread_pool": 16,
            "server.socket_queue_size": 128,
            "engine.autoreload.on": False,
            "checker.on": False,
            "log.screen": True,
        }
    )
    cherrypy.tree.mount(app, "")
    cherrypy.engine.signal_handler.subscribe()
    cherrypy.engine.start()
    cherrypy.engine.block()


if __name__ == "__main__":
    main()
