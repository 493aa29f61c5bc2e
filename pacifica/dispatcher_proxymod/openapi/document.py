"""The whole OpenAPI document, built once; :func:`description` hands out fresh copies."""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__
from .paths import describe_paths
from .schemas import describe_schemas

OPENAPI_VERSION = "3.0.3"
_DOCUMENT: dict[str, Any] = {
    "openapi": OPENAPI_VERSION,
    "info": {
        "title": "pacifica-dispatcher-proxymod",
        "version": __version__,
        "description": "Receives Pacifica CloudEvents, runs the proxymod models they name in a "
        "sandbox, and uploads the results. Every error body is JSON.",
    },
    "paths": describe_paths(),
    "components": {
        "schemas": describe_schemas(),
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic"},
            "bearerAuth": {"type": "http", "scheme": "bearer"},
        },
    },
}


def description() -> dict[str, Any]:
    """The OpenAPI document, as a fresh JSON-ready dict."""
    return copy.deepcopy(_DOCUMENT)
