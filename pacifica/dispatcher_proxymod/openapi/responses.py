"""The pieces every operation's answers share: JSON bodies, the error body, headers, security."""

from __future__ import annotations

from typing import Any

from ..store import shape

_ref = shape.ref

JSON = "application/json"


def json_response(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def error_response(description: str, **extra: Any) -> dict[str, Any]:
    return json_response(description, _ref("Error"), **extra)


LOCATION_HEADER = {
    "Location": {
        "description": "where the task's record is: /get/<taskID>",
        "schema": {"type": "string"},
    }
}
RETRY_HEADER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_CHALLENGE_HEADER = {
    "WWW-Authenticate": {"description": "the scheme to use", "schema": {"type": "string"}}
}
UNAUTHORIZED = error_response(
    "Missing or wrong credentials (only when DISPATCHER_AUTH is set)", headers=_CHALLENGE_HEADER
)
NOT_FOUND = error_response(
    "The path, or a query parameter, names nothing this service has "
    "(CherryPy's error body for unknown paths and parameters)"
)
#: No credentials unless DISPATCHER_AUTH is set; then the scheme it names.
SECURITY: list[dict[str, list[str]]] = [{}, {"basicAuth": []}, {"bearerAuth": []}]
