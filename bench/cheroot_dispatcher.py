"""The dispatcher served by cheroot (CherryPy's own server, 16 threads) instead of waitress.

Exactly the console script's web command (``cli.main``: settings, logging, the application
and whatever the project puts in front of it), except that the function handing the WSGI app
to its server (``server.mount``) is replaced by one starting a cheroot server with the
settings the old ``cli.serve`` used (16 threads, listen backlog 128, the body limit). For the
A/B of the two embedded servers (bench/receive.py, bench/slow_clients.py).

    .venv/bin/python bench/cheroot_dispatcher.py --host 127.0.0.1 --port 8097
"""

from __future__ import annotations

import sys
from typing import Any

import cherrypy
from cheroot import wsgi
from cherrypy.process.servers import ServerAdapter

from pacifica.dispatcher_proxymod import cli, server

THREADS = 16
BACKLOG = 128


def mount_cheroot(app: Any, host: str, port: int, _http: Any, max_body: int) -> wsgi.Server:
    """Serve ``app`` with cheroot under CherryPy's engine (``server.mount``'s signature)."""
    cherrypy.server.unsubscribe()
    httpd = wsgi.Server(
        (host, port), app, numthreads=THREADS, request_queue_size=BACKLOG, server_name=host
    )
    httpd.max_request_body_size = max_body
    ServerAdapter(cherrypy.engine, httpd, (host, port)).subscribe()
    return httpd


def main() -> int:
    """Run the console script's web command under cheroot."""
    server.mount = mount_cheroot  # cli.serve imports it from the module when it runs
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
