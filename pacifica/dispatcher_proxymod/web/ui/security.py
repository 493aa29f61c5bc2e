"""What keeps the dashboard safe to open: response headers and the CSRF check of its forms.

* Content-Security-Policy: scripts and styles from our own ``/ui/static/`` only (no inline
  script, no ``eval``), images from us and ``data:``, no frames, no plugins, forms post to us.
  Everything from an event or a model is escaped by Jinja2's autoescape; the policy is the
  second wall.
* CSRF: the double-submit pattern. A random token lives in a ``SameSite=Strict``, ``HttpOnly``
  cookie and in each form; a POST must carry both, equal (compared in constant time), and an
  ``Origin`` (or ``Referer``) of this host when the browser sends one. Stateless, so it works
  across web processes.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

import cherrypy

CSRF_COOKIE = "dispatcher_csrf"
CSRF_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
#: For files served for download: nothing in them may run in our origin.
DOWNLOAD_POLICY = "default-src 'none'; sandbox"


def page_headers() -> None:
    """The headers of every dashboard page."""
    headers = cherrypy.response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    headers["Cache-Control"] = "no-store"


def csrf_token() -> str:
    """This browser's CSRF token (set as a cookie when it has none yet)."""
    cookie = cherrypy.request.cookie.get(CSRF_COOKIE)
    token = cookie.value if cookie is not None and len(cookie.value) == 43 else None
    if token is None:
        token = secrets.token_urlsafe(32)
        response = cherrypy.response.cookie
        response[CSRF_COOKIE] = token
        response[CSRF_COOKIE]["path"] = "/ui/"
        response[CSRF_COOKIE]["httponly"] = True
        response[CSRF_COOKIE]["samesite"] = "Strict"
        if cherrypy.request.scheme == "https":
            response[CSRF_COOKIE]["secure"] = True
    return token


def _same_origin() -> bool:
    request = cherrypy.request
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if not claimed:
        return True  # not sent (old browsers, privacy settings): the token decides
    host = str(request.headers.get("Host", ""))
    return urlsplit(str(claimed)).netloc == host


def csrf_ok(submitted: object) -> bool:
    """True when a POST carries this browser's token and comes from this host."""
    cookie = cherrypy.request.cookie.get(CSRF_COOKIE)
    if cookie is None or not isinstance(submitted, str) or not submitted:
        return False
    return bool(hmac.compare_digest(cookie.value.encode(), submitted.encode())) and _same_origin()
