"""``POST /receive`` as a plain WSGI application, in front of the CherryPy application.

The one busy endpoint skips CherryPy's request machinery (dispatch, tools, hooks, the request
and response objects): :class:`ReceiveEndpoint` reads the WSGI environ itself and answers with
pre-encoded JSON. It keeps everything documented about ``/receive``: the credentials check of
auth.py, 405 with ``Allow``, 411 without a length, 413 over ``DISPATCHER_MAX_BODY_BYTES``
(chunked bodies too), the JSON error shapes, the request counters and latency of metrics.py,
and CherryPy's access-log line (never a body or a credential). Bodies over
:data:`~.receive.LARGE_BODY_BYTES` are read and parsed one at a time, to bound memory.
Everything else, and a request CherryPy itself would refuse first (HTTP/1.1 without
``Host``), goes to CherryPy unchanged (:class:`FastPathApplication`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import cherrypy
from cherrypy._cplogging import LogManager
from cherrypy.lib.httputil import decode_TEXT_maybe, response_codes

from ..settings import Settings
from .auth import authenticate_environ, refusal
from .errors import JSON, encode
from .metrics import WebMetrics
from .receive import LARGE_BODY_BYTES, Answer, Receiver, failure

log = logging.getLogger(__name__)

#: The paths the fast path serves (CherryPy's dispatcher maps both to ``receive``).
RECEIVE_PATHS = frozenset({"/receive", "/receive/"})

_READ_CHUNK = 64 * 1024
#: The most seconds :meth:`FastPathApplication.close` waits for each thing it stops (the
#: intake: what is left after it is recovery's).
CLOSE_SECONDS = 30.0
_UNEXPECTED = (
    "The server encountered an unexpected condition which prevented it from fulfilling the request."
)

StartResponse = Callable[..., Any]


class TooLarge(Exception):
    """The body grew past the limit while it was read (a body without a length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over {limit} bytes")
        self.limit = limit


class ReceiveEndpoint:
    """``POST /receive`` as a WSGI callable."""

    def __init__(
        self, settings: Settings, receiver: Receiver, metrics: WebMetrics, app_log: LogManager
    ) -> None:
        self.settings = settings
        self.receiver = receiver
        self.metrics = metrics
        self.app_log = app_log
        self._large_bodies = threading.Lock()
        self._time_made = (0, "")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        try:
            answer = self.answer(environ)
        except Exception:  # as CherryPy: logged with its traceback, answered as a JSON 500
            self.app_log.error("unexpected error in POST /receive", traceback=True, severity=40)
            answer = Answer(500, _status_document(500, _UNEXPECTED))
        headers = [
            ("Content-Type", JSON),
            ("Content-Length", str(len(answer.body))),
            *answer.headers,
        ]
        start_response(_status_line(answer.status), headers)
        self.metrics.requests.labels(code=str(answer.status)).inc()
        self.metrics.receive_latency.observe(time.monotonic() - started)
        self._access(environ, answer)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [answer.body]

    def answer(self, environ: Mapping[str, Any]) -> Answer:
        """The answer to one request to ``/receive`` (any method)."""
        if environ.get("REQUEST_METHOD") != "POST":
            answer = failure(405, "MethodNotAllowed", "POST a CloudEvent to /receive")
            return Answer(answer.status, answer.body, (("Allow", "POST"),))
        challenge = authenticate_environ(self.settings, environ)
        if challenge is not None:
            answer = failure(401, "Unauthorized", refusal(self.settings, _path(environ)))
            return Answer(answer.status, answer.body, (("WWW-Authenticate", challenge),))
        limit = self.settings.max_body_bytes
        header = str(environ.get("CONTENT_LENGTH") or "").strip()
        length = int(header) if header.isdigit() else None  # unknown: read to its end, bounded
        if length is None and not environ.get("HTTP_TRANSFER_ENCODING"):
            return Answer(411, _status_document(411, "Client must specify Content-Length"))
        if length is not None and length > limit:
            return failure(413, "PayloadTooLarge", f"the body is over {limit} bytes")
        large = length is None or length > LARGE_BODY_BYTES
        # a parsed event takes several times its body in memory: large ones go one at a time
        read = functools.partial(read_body, environ["wsgi.input"], length, limit)
        with self._large_bodies if large else contextlib.nullcontext():
            try:  # the receiver reads the body: it holds the only reference to it
                return self.receiver.receive(event_headers(environ), read)
            except TooLarge as exc:
                return failure(413, "PayloadTooLarge", str(exc))

    def _log_time(self) -> str:
        """CherryPy's time of the access log (to the second), made once a second."""
        second = int(time.time())
        made, text = self._time_made
        if made != second:
            text = self.app_log.time()
            self._time_made = (second, text)
        return text

    def _access(self, environ: Mapping[str, Any], answer: Answer) -> None:
        """CherryPy's access-log line (Apache combined format) for this request."""
        if not self.app_log.access_log.isEnabledFor(logging.INFO):
            return  # (nothing would write it: not worth building on the hot path)
        query = environ.get("QUERY_STRING", "")
        target = f"{environ.get('SCRIPT_NAME', '')}{_path(environ)}" + (
            f"?{query}" if query else ""
        )
        atoms = {
            "h": environ.get("REMOTE_HOST") or environ.get("REMOTE_ADDR", ""),
            "l": "-",
            "u": environ.get("REMOTE_USER") or "-",
            "t": self._log_time(),
            "r": f"{environ.get('REQUEST_METHOD')} {target} {environ.get('SERVER_PROTOCOL')}",
            "s": str(answer.status),
            "b": str(len(answer.body)),
            "f": environ.get("HTTP_REFERER", ""),
            "a": environ.get("HTTP_USER_AGENT", ""),
        }
        try:
            line = self.app_log.access_log_format.format(
                **{name: _escape(str(value)) for name, value in atoms.items()}
            )
            self.app_log.access_log.log(logging.INFO, line)
        except Exception:  # a custom format with atoms we do not fill: as CherryPy, logged
            self.app_log.error("cannot write the access log line", traceback=True)


def read_body(stream: Any, length: int | None, limit: int) -> bytes:
    """The request body: ``length`` bytes, or (no length) everything up to ``limit`` bytes."""
    if length is not None:
        body = stream.read(length) if length else b""
        if len(body) >= length:
            return bytes(body)
        parts = [body]  # a server whose read() returns less than asked
        got = len(body)
        while got < length and (part := stream.read(length - got)):
            parts.append(part)
            got += len(part)
        return b"".join(parts)
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def event_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The headers a CloudEvent can be in (``Content-Type``, ``ce-*``), as CherryPy reads
    them (names as sent; values stripped, RFC 2047 words decoded)."""
    headers: dict[str, str] = {}
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers["Content-Type"] = decode_TEXT_maybe(str(content_type).strip())
    for name, value in environ.items():
        if name.startswith("HTTP_CE_") and isinstance(value, str):
            headers[name[5:].replace("_", "-").title()] = decode_TEXT_maybe(value.strip())
    return headers


def _path(environ: Mapping[str, Any]) -> str:
    return str(environ.get("PATH_INFO", ""))


def _status_line(status: int) -> str:
    reason = response_codes.get(status, ("",))[0]
    return f"{status} {reason}".rstrip()


def _status_document(status: int, message: str) -> bytes:
    """The shape of CherryPy's own error pages (errors.json_error_page)."""
    return encode(
        {"error": _status_line(status).partition(" ")[2], "message": message, "status": status}
    )


def _escape(value: str) -> str:
    """CherryPy's escaping of access-log atoms: unprintable bytes as ``\\xhh``, quotes escaped.

    Printable ASCII without a double quote or a backslash (nearly every atom) stays as it is.
    """
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    text = repr(value.replace('"', '\\"').encode("utf8"))[2:-1]
    return text.replace("\\\\", "\\")


class FastPathApplication(cherrypy.Application):  # type: ignore[misc]
    """The CherryPy application with ``/receive`` served by :class:`ReceiveEndpoint` first.

    Mounted, merged and configured like any CherryPy application (cli.py, __main__, tests).
    """

    receive_endpoint: ReceiveEndpoint | None = None
    #: What :meth:`close` stops, in order: the intake (writes and publishes what it holds).
    closing: tuple[Callable[[float | None], object], ...] = ()

    def close(self, timeout: float | None = CLOSE_SECONDS) -> None:
        """Stop taking events and finish what was taken: every row the intake holds is written
        and its message handed to the broker (or left to recovery). Call it after the HTTP
        server stopped; again is harmless."""
        for stop in self.closing:
            stop(timeout)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        endpoint = self.receive_endpoint
        if (
            endpoint is not None
            and environ.get("PATH_INFO") in RECEIVE_PATHS
            and (environ.get("HTTP_HOST") or environ.get("SERVER_PROTOCOL") != "HTTP/1.1")
        ):
            return endpoint(environ, start_response)
        return super().__call__(environ, start_response)
