"""The ceiling of the receive benchmark: a bare cheroot WSGI app that reads the body, answers 202.

It is the same HTTP server CherryPy runs on, with the same thread count, and does nothing else,
so ``dispatcher req/s / ceiling req/s`` is the share of the server's capacity our code leaves.

With ``--server waitress`` the same app runs under the dispatcher's embedded server as shipped
(server.py, default limits), with ``--server granian`` under granian (one worker, the threads of
bench/granian_dispatcher.py): a server's *floor*, the most of the ceiling any application behind
that server can reach.

    .venv/bin/python bench/ceiling.py --port 8099 [--threads 16] [--server cheroot]
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import wsgi

ANSWER = b'{"taskID": "00000000-0000-0000-0000-000000000000", "status": "202 Accepted"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Read the whole body, answer 202 with a JSON body about as long as the dispatcher's."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    while length > 0:
        chunk = stream.read(min(length, 1 << 16))
        if not chunk:
            break
        length -= len(chunk)
    start_response(
        "202 Accepted",
        [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))],
    )
    return [ANSWER]


def serve_cheroot(host: str, port: int, threads: int) -> None:
    """Bare cheroot, the yardstick."""
    server = wsgi.Server((host, port), app, numthreads=threads)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


def serve_waitress(host: str, port: int, threads: int) -> None:
    """The dispatcher's waitress (server.py) with its default limits; SIGTERM ends the process."""
    from dataclasses import replace

    from pacifica.dispatcher_proxymod.server import WaitressServer
    from pacifica.dispatcher_proxymod.settings import HttpSettings, Settings

    http = replace(HttpSettings(), threads=threads)
    WaitressServer(app, host, port, http, Settings().max_body_bytes).start()


def serve_granian(host: str, port: int, threads: int) -> None:
    """granian, as bench/granian_dispatcher.py runs the dispatcher (one worker process)."""
    from granian_dispatcher import serve

    serve("ceiling:app", host, port, threads)


SERVE = {"cheroot": serve_cheroot, "waitress": serve_waitress, "granian": serve_granian}


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--server", choices=sorted(SERVE), default="cheroot")
    args = parser.parse_args()
    SERVE[args.server](args.host, args.port, args.threads)


if __name__ == "__main__":
    main()
