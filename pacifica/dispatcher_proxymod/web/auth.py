"""Optional authentication (``DISPATCHER_AUTH``): HTTP Basic or Bearer, constant-time comparison.

Every endpoint but ``/health`` and ``/openapi.json`` asks: the tasks name submitters, projects,
files and failures.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any

import cherrypy

from ..settings import Settings
from .errors import error


def challenge(settings: Settings, authorization: str) -> str | None:
    """None when the ``Authorization`` header value lets the request in; else the
    ``WWW-Authenticate`` challenge to answer 401 with (any framework: the header is a string)."""
    if settings.auth == "none":
        return None
    scheme, _, credentials = authorization.partition(" ")
    token = (settings.auth_token or "").encode()
    if (
        settings.auth == "bearer"
        and scheme.lower() == "bearer"
        and hmac.compare_digest(credentials.strip().encode(), token)
    ):
        return None
    if settings.auth == "basic" and scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8: no credential
            user, password = "", ""
        user_ok = hmac.compare_digest(user.encode(), (settings.auth_username or "").encode())
        pass_ok = hmac.compare_digest(password.encode(), (settings.auth_password or "").encode())
        if user_ok and pass_ok:
            return None
    return "Bearer" if settings.auth == "bearer" else 'Basic realm="dispatcher"'


def refusal(settings: Settings, path: str) -> str:
    """The message of the 401 answer for ``path``."""
    return f"{path} needs {settings.auth} credentials"


def authenticate(settings: Settings) -> bytes | None:
    """None when the CherryPy request may go on; else the 401 answer with its challenge."""
    asked = challenge(settings, cherrypy.request.headers.get("Authorization", ""))
    if asked is None:
        return None
    cherrypy.response.headers["WWW-Authenticate"] = asked
    return error(401, "Unauthorized", refusal(settings, cherrypy.request.path_info))


def authenticate_environ(settings: Settings, environ: Mapping[str, Any]) -> str | None:
    """:func:`authenticate` for a WSGI request: None, or the challenge of its 401 answer."""
    header = environ.get("HTTP_AUTHORIZATION", environ.get("HTTP_CGI_AUTHORIZATION", ""))
    return challenge(settings, header if isinstance(header, str) else "")


def requester(settings: Settings) -> str:
    """Who is asking, in words, for a reason such as "cancelled by ..." (after
    :func:`authenticate` let the request through)."""
    if settings.auth == "basic":
        who = settings.auth_username or "a user"
    elif settings.auth == "bearer":
        who = "a bearer-token holder"
    else:
        who = "an operator"
    remote = cherrypy.request.remote
    address = getattr(remote, "ip", None)
    return f"{who} over HTTP from {address}" if address else f"{who} over HTTP"
