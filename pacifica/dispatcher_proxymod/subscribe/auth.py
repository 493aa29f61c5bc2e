"""The credentials a subscription carries, so that Notifications' deliveries pass ``/receive``."""

from __future__ import annotations

from typing import Any

from ..settings import Settings
from .subscription import SubscriptionError


def delivery_auth(
    settings: Settings,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The ``auth`` object that makes Notifications' deliveries pass our ``/receive``.

    Explicit values win; without any, the service's own ``DISPATCHER_AUTH*`` settings are
    used, so the subscription carries exactly the credentials ``/receive`` demands.
    An empty dict means no credentials.
    """
    if token and (username or password):
        raise SubscriptionError("give either a bearer token or basic credentials, not both")
    if token:
        return bearer_auth(token)
    if username or password:
        if not username:
            raise SubscriptionError("--auth-password needs --auth-user")
        secret = password
        if secret is None and settings.auth == "basic" and settings.auth_username == username:
            secret = settings.auth_password
        if not secret:
            raise SubscriptionError(
                f"no password for delivery user {username!r}: give --auth-password or "
                "DISPATCHER_AUTH_PASSWORD"
            )
        return basic_auth(username, secret)
    if settings.auth == "basic" and settings.auth_username and settings.auth_password:
        return basic_auth(settings.auth_username, settings.auth_password)
    if settings.auth == "bearer" and settings.auth_token:
        return bearer_auth(settings.auth_token)
    return {}


def basic_auth(username: str, password: str) -> dict[str, Any]:
    """Notifications' ``auth`` for HTTP basic credentials."""
    return {"type": "basic", "basic": {"username": username, "password": password}}


def bearer_auth(token: str) -> dict[str, Any]:
    """Notifications' ``auth`` that sends ``Authorization: Bearer <token>``."""
    return {"type": "header", "header": {"type": "Bearer", "credentials": token}}
