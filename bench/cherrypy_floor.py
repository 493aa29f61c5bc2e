"""A second reference for the receive benchmark: CherryPy itself, configured as the dispatcher.

Same server as ``cli.serve`` (waitress, server.py, 16 threads; access log to the screen) and
the same application config (``web.app_config``); its ``/receive`` reads the body and answers
202 with a JSON body, and does nothing else. The gap between it and bench/ceiling.py is
CherryPy's (and the server's) own cost; the gap between it and the dispatcher is ours.

    .venv/bin/python bench/cherrypy_floor.py --port 8098
"""

from __future__ import annotations

import argparse
import json

import cherrypy

from pacifica.dispatcher_proxymod.server import mount
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import app_config


class FloorApi:
    """``/receive`` without any of the dispatcher's work; ``/health`` for readiness."""

    @cherrypy.expose
    def receive(self) -> bytes:
        """Read the body, answer 202."""
        cherrypy.request.body.read()
        cherrypy.response.status = 202
        cherrypy.response.headers["Content-Type"] = "application/json"
        answer = {"taskID": "00000000-0000-0000-0000-000000000000", "status": "202 Accepted"}
        return json.dumps(answer).encode()

    @cherrypy.expose
    def health(self) -> bytes:
        """Always fine."""
        return b'{"status": "ok"}'


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    app = cherrypy.Application(FloorApi(), "", app_config(settings))
    cherrypy.config.update({"engine.autoreload.on": False, "checker.on": False, "log.screen": True})
    cherrypy.tree.mount(app, "")
    # the dispatcher's own server (waitress, server.py) with its default limits
    mount(cherrypy.tree, args.host, args.port, settings.http, settings.max_body_bytes)
    cherrypy.engine.signal_handler.subscribe()
    cherrypy.engine.start()
    cherrypy.engine.block()


if __name__ == "__main__":
    main()
