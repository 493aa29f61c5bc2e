"""The embedded HTTP server: waitress, which reads each request whole before a thread sees it.

Connections are read by one asynchronous loop; only a complete request (headers and body) is
handed to one of the worker threads that run the CherryPy application. So idle clients and
slow ones (a header line every few seconds, a body a byte at a time) hold a socket and a
bounded buffer, never a thread: ``/health`` and ``/receive`` keep answering beside them.

Limits, each a setting (:class:`~.settings.HttpSettings`): header bytes and header count
(431), body bytes (413, chunked bodies too), the time to receive one whole request (408), idle
time of a kept-alive connection, and open connections. Framing errors (two ``Content-Length``
headers, bad chunk sizes, a missing CRLF) get 400. Every answer the server writes itself is JSON
and never echoes what the client sent. SIGTERM stops accepting, answers what is being read or
run, then exits (bounded by ``shutdown_seconds``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import cherrypy
from cherrypy.process.servers import ServerAdapter
from cherrypy.process.wspbus import states
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import BadRequest, RequestHeaderFieldsTooLarge

from .settings import HttpSettings

log = logging.getLogger(__name__)

#: The ``Server`` header (no version: nothing to look up for an attacker).
IDENT = "pacifica-dispatcher"


#: The longest the server's loop sleeps between passes (then it checks for a stop, and every
#: connection's wants, again).
LOOP_SECONDS = 0.5
#: How often a server not yet allowed to answer asks again (``may_serve``).
GATE_SECONDS = 0.01

#: Bytes of a request body kept in memory while it arrives; the rest goes to a temporary file.
INBUF_OVERFLOW = 64 * 1024

#: The API's names for the server's own answers (the rest: the reason phrase without spaces).
ERROR_NAMES = {400: "BadRequest", 413: "PayloadTooLarge", 501: "NotImplemented"}


class RequestTimeout(BadRequest):
    """The whole request did not arrive within the request time limit."""

    code = 408
    reason = "Request Timeout"


class JsonErrorTask(ErrorTask):
    """The server's own error answers (400, 408, 413, 431, 500, 501) as the API's JSON shape."""

    def execute(self) -> None:
        request: Any = self.request  # (the stubs say Error; it is the parser holding one)
        error = request.error
        # waitress quotes some of the offending bytes ('Malformed header line "..."'): never
        # send back (or let a proxy log) what a client sent, credentials included
        message = str(error.body).split('"', 1)[0].strip() or error.reason
        if error.code == 413:
            message = f"the body is over {self.channel.adj.max_request_body_size - 1} bytes"
        name = ERROR_NAMES.get(error.code, error.reason.replace(" ", ""))
        body = json.dumps({"error": name, "message": message, "status": error.code}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers = [*self.response_headers, ("Content-Type", "application/json")]
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class LimitedParser(HTTPRequestParser):
    """waitress's parser plus a header-count limit and a deadline for the whole request."""

    max_headers = 100
    request_seconds = 60.0

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.deadline = time.monotonic() + self.request_seconds
        self._too_many = False

    def received(self, data: bytes) -> int:
        if not self.completed and time.monotonic() > self.deadline:
            self.time_out()
            return len(data)
        consumed: int = super().received(data)
        if self._too_many:
            self.error = RequestHeaderFieldsTooLarge(f"more than {self.max_headers} header fields")
        return consumed

    def time_out(self) -> None:
        """End this request with 408 (what arrived of it is dropped)."""
        if not self.headers_finished:
            self.parse_header(b"GET / HTTP/1.0\r\n")
        self.error = RequestTimeout(f"the request did not arrive within {self.request_seconds:g} s")
        self.completed = True

    def parse_header(self, header_plus: bytes) -> None:
        if header_plus.count(b"\n") > self.max_headers:
            self._too_many = True
            raise ParsingError("too many header fields")
        super().parse_header(header_plus)


class GuardedChannel(HTTPChannel):
    """A connection with JSON error answers and the limited parser."""

    error_task_class = JsonErrorTask
    parser_class = LimitedParser

    def in_flight(self) -> bool:
        """True while part of a request has arrived, or a request is queued, run or sent."""
        partial = self.request is not None and (
            self.request.header_plus or self.request.headers_finished
        )
        return bool(partial or self.requests or self.total_outbufs_len)

    def writable(self) -> bool:
        """As waitress's, except while a running task holds the output lock.

        Then the loop cannot send (its flush does not wait for that lock), so a socket ready
        for writing would make every ``poll()`` return at once, each pass asking every
        connection ``readable()`` and ``writable()``, until the task's thread gets the GIL
        back: at 64 connections, a hundred passes and more per request, half the web's CPU
        (bench/README). The task sends its own output as it writes it and pulls the loop's
        trigger when it ends; what a full socket left behind meanwhile waits for that, or for
        the loop's next pass (``LOOP_SECONDS``). Past waitress's high watermark a task waits
        for the loop to drain its output: then the loop asks as waitress does.
        """
        if self.requests and 0 < self.total_outbufs_len <= self.adj.outbuf_high_watermark:
            lock: Any = self.outbuf_lock
            if not lock.acquire(False):
                return False
            lock.release()
        return bool(super().writable())


class GuardedServer(TcpWSGIServer):
    """A waitress TCP server whose housekeeping also ends requests past their deadline."""

    channel_class = GuardedChannel

    def maintenance(self, now: int) -> None:
        # first the partial requests past their deadline (408), then waitress's own idle check
        # (closes, without an answer, connections that sent no byte of a request for a while)
        clock = time.monotonic()
        channels: dict[int, Any] = self.active_channels  # type: ignore[assignment]
        for channel in list(channels.values()):
            request = channel.request
            if request is not None and not request.completed and clock > request.deadline:
                # a client that stopped sending in the middle: 408, then the connection closes
                with channel.requests_lock:
                    request.time_out()
                    channel.requests.append(request)
                    channel.request = None
                    if len(channel.requests) == 1:
                        self.add_task(channel)
        super().maintenance(now)


class WaitressServer:
    """The HTTP server as CherryPy's engine expects one (``start``, ``stop``, ``ready``)."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        http: HttpSettings,
        max_body: int,
        may_serve: Callable[[], bool] = lambda: True,
    ) -> None:
        """``may_serve``: asked every :data:`GATE_SECONDS` once the socket listens; nothing is
        answered before it says True (clients wait in the listen backlog meanwhile)."""
        self.app = app
        self.http = http
        self.ready = False
        self.may_serve = may_serve
        self._stopped = threading.Event()
        parser = type(
            "Parser",
            (LimitedParser,),
            {"max_headers": http.max_headers, "request_seconds": http.request_timeout_seconds},
        )
        channel = type("Channel", (GuardedChannel,), {"parser_class": parser})
        self._server_class = type("Server", (GuardedServer,), {"channel_class": channel})
        self.adjustments = Adjustments(
            host=host,
            port=port,
            threads=http.threads,
            connection_limit=http.connection_limit,
            channel_timeout=max(1, round(http.idle_timeout_seconds)),
            cleanup_interval=1,
            max_request_header_size=http.max_header_bytes,
            max_request_body_size=max_body + 1,  # waitress refuses a length >= this
            # a body larger than this waits in a temporary file, not in memory, until the
            # whole request arrived (waitress: 512 KiB, so 16 bodies arriving at once held 8 MiB
            # and a copy of each at every read)
            inbuf_overflow=INBUF_OVERFLOW,
            asyncore_use_poll=True,  # select() cannot watch more than 1024 sockets
            ident=IDENT,
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=False,
        )
        self.server: GuardedServer | None = None

    @property
    def socket(self) -> Any:
        """The listening socket (CherryPy reads the port of a ``--port 0`` server from it)."""
        return self.server.socket if self.server is not None else None

    def bind(self) -> GuardedServer:
        """Create the listening socket (once)."""
        if self.server is None:
            dispatcher = ThreadedTaskDispatcher()
            dispatcher.set_thread_count(self.adjustments.threads)
            self.server = self._server_class(
                self.app, map={}, dispatcher=dispatcher, adj=self.adjustments
            )
        return self.server

    def start(self) -> None:
        """Serve until :meth:`stop` (blocks; CherryPy runs it in a thread of its own)."""
        server = self.bind()
        self.ready = True
        log.info(
            "waitress: %d threads, up to %d connections, headers <= %d bytes and %d fields, "
            "a request within %g s, idle connections closed after %g s",
            self.http.threads,
            self.http.connection_limit,
            self.http.max_header_bytes,
            self.http.max_headers,
            self.http.request_timeout_seconds,
            self.http.idle_timeout_seconds,
        )
        while not self.may_serve() and not self._stopped.wait(GATE_SECONDS):
            pass
        try:
            sockets: dict[int, Any] = server._map  # type: ignore[attr-defined]
            while sockets:
                wasyncore.loop(timeout=LOOP_SECONDS, map=sockets, use_poll=True, count=1)
                if self._stopped.is_set():
                    self._drain(server)
        finally:
            server.task_dispatcher.shutdown(timeout=round(self.http.shutdown_seconds))
            self.ready = False

    def _drain(self, server: GuardedServer) -> None:
        """After stop: no new connections; close each connection once nothing is in flight."""
        if server.accepting:
            server.accepting = False
            wasyncore.dispatcher.close(server)  # the listening socket only, not the trigger
            self._drain_deadline = time.monotonic() + self.http.shutdown_seconds
        late = time.monotonic() > self._drain_deadline
        channels: dict[int, Any] = server.active_channels  # type: ignore[assignment]
        for channel in list(channels.values()):
            if late or not channel.in_flight():
                channel.handle_close()
        if not channels:
            trigger: Any = server.trigger
            trigger.close()

    def stop(self) -> None:
        """Stop accepting, finish what is in flight (bounded), and end :meth:`start`."""
        self._stopped.set()
        if self.server is not None and self.ready:
            with contextlib.suppress(OSError):  # the loop ended (and closed it) meanwhile
                self.server.pull_trigger()
        deadline = time.monotonic() + self.http.shutdown_seconds + 10
        while self.ready and time.monotonic() < deadline:
            time.sleep(0.05)

    _drain_deadline = 0.0


def mount(app: Any, host: str, port: int, http: HttpSettings, max_body: int) -> WaitressServer:
    """Serve ``app`` with waitress under CherryPy's engine in place of its own cheroot server.

    It answers once the engine has started: CherryPy ends a process whose start had not
    finished at once (``os._exit(70)``, unwritten log lines lost) when SIGTERM comes, so a
    client that got an answer must be able to count on a clean stop.
    """
    cherrypy.server.unsubscribe()
    server = WaitressServer(app, host, port, http, max_body, may_serve=_engine_started)
    ServerAdapter(cherrypy.engine, server, (host, port)).subscribe()
    return server


def _engine_started() -> bool:
    return bool(cherrypy.engine.state == states.STARTED)
