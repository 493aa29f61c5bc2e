"""The dispatcher's WSGI application served by granian (Rust, one worker) instead of waitress.

For the A/B of embedded servers in bench/receive.py (issue 11 asks what another server would
give). Not shipped: granian owns its process (a worker process it spawns, its own signals),
so CherryPy's engine runs without its HTTP server here, and the hardening issue's limits
(whole-request deadline, JSON answers to framing errors) are waitress's (server.py), not
granian's. ``pip install granian`` into the venv first.

    .venv/bin/python bench/granian_dispatcher.py --host 127.0.0.1 --port 8097
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

#: The Python threads that run the application (waitress's default is 16).
BLOCKING_THREADS = 8


def build() -> Any:
    """The application as the console script's web command builds it (in granian's worker)."""
    import cherrypy

    from pacifica.dispatcher_proxymod.cli import mount_application
    from pacifica.dispatcher_proxymod.logconfig import configure
    from pacifica.dispatcher_proxymod.settings import load_settings

    settings = load_settings()
    configure(settings, buffered=True)
    mount_application(settings)
    cherrypy.server.unsubscribe()  # granian serves it
    cherrypy.engine.start()
    return cherrypy.tree


def serve(target: str, host: str, port: int, threads: int, factory: bool = False) -> None:
    """Serve the WSGI callable ``target`` (``module:name`` in bench/) with granian: one worker
    process, ``threads`` Python threads (``factory``: ``target`` builds the application)."""
    from granian import Granian

    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, here)
    Granian(
        target,
        address=host,
        port=port,
        interface="wsgi",
        workers=1,
        blocking_threads=threads,
        factory=factory,
    ).serve()


def main() -> int:
    """Serve :func:`build`'s application with granian on ``--host``/``--port``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8069)
    parser.add_argument("--threads", type=int, default=BLOCKING_THREADS)
    args = parser.parse_args()
    serve("granian_dispatcher:build", args.host, args.port, args.threads, factory=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
