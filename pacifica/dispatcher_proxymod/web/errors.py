"""JSON answers and error pages of the HTTP API: every error is JSON, never a traceback."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import cherrypy
import orjson

JSON = "application/json"


def encode(payload: Any) -> bytes:
    """``payload`` as JSON bytes (orjson; the standard library for what orjson refuses: a
    string with a lone surrogate, an integer beyond 64 bits)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload).encode("utf-8")


def error_document(error: str, message: str, **extra: Any) -> bytes:
    """The body of a JSON error answer: ``{"error": ..., "message": ..., **extra}``."""
    return encode({"error": error, "message": message, **extra})


def json_body(payload: Any) -> bytes:
    """``payload`` as the JSON body of the answer."""
    cherrypy.response.headers["Content-Type"] = JSON
    return json.dumps(payload).encode("utf-8")


def error(status: int, error: str, message: str, **extra: Any) -> bytes:
    """A JSON error answer: ``{"error": ..., "message": ..., **extra}`` with ``status``."""
    cherrypy.response.status = status
    return json_body({"error": error, "message": message, **extra})


def json_error_page(status: str, message: str, traceback: str, version: str) -> str:
    """CherryPy's error page, as JSON and never with a traceback."""
    cherrypy.response.headers["Content-Type"] = JSON
    code, _, reason = status.partition(" ")
    return json.dumps({"error": reason or status, "message": message, "status": int(code)})


class JsonErrorsRequest(cherrypy._cprequest.Request):  # type: ignore[misc]
    """CherryPy's request with the JSON error page from the start.

    The application config's ``error_page.default`` applies only once the resource is found;
    errors before that (an HTTP/1.1 request without ``Host``, a path outside the tree) would
    get CherryPy's HTML page.
    """

    error_page: ClassVar[dict[str, Any]] = {"default": json_error_page}  # copied per request


def method_not_allowed(allowed: str, message: str) -> bytes:
    """405 with the ``Allow`` header."""
    cherrypy.response.headers["Allow"] = allowed
    return error(405, "MethodNotAllowed", message)


def only_get() -> bytes | None:
    """None for GET and HEAD; else the 405 answer."""
    if cherrypy.request.method in ("GET", "HEAD"):
        return None
    return method_not_allowed("GET, HEAD", "use GET")
