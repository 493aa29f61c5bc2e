"""Optional authentication (``DISPATCHER_AUTH``): HTTP Basic or Bearer, constant-time comparison.

Every endpoint but ``/health`` and ``/openapi.json`` asks: the tasks name submitters, projects,
files and failures.
"""

from __future__ import annotations

import base64
import hmac

import cherrypy

from ..settings import Settings
from .errors import error


def authenticate(settings: Settings) -> bytes | None:
    """None when the request may go on; else the 401 answer with its challenge."""
    if settings.auth == "none":
        return None
    header = cherrypy.request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
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
    challenge = "Bearer" if settings.auth == "bearer" else 'Basic realm="dispatcher"'
    cherrypy.response.headers["WWW-Authenticate"] = challenge
    path = cherrypy.request.path_info
    return error(401, "Unauthorized", f"{path} needs {settings.auth} credentials")


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
