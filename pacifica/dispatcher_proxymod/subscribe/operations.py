"""What an operator does with our subscription: register (or update) it, find, re-enable, delete."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .client import NotificationsClient
from .expression import check_expression
from .subscription import Subscription, SubscriptionError


@dataclass(frozen=True)
class Registration:
    """What :func:`subscribe` did: ``action`` is "created" or "updated"."""

    action: str
    subscription: Subscription
    duplicates: tuple[Subscription, ...] = ()


def subscription_body(
    name: str,
    jsonpath: str,
    target_url: str,
    auth: Mapping[str, Any],
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON Notifications wants for a new or updated subscription."""
    if not name:
        raise SubscriptionError("the subscription needs a name")
    if not target_url.startswith(("http://", "https://")):
        raise SubscriptionError(f"the target URL {target_url!r} is not http(s)")
    check_expression(jsonpath)
    body: dict[str, Any] = {
        "name": name,
        "jsonpath": jsonpath,
        "target_url": target_url,
        "extensions": dict(extensions or {}),
    }
    if auth:  # Notifications' schema refuses an empty auth object; left out, it stores {}
        body["auth"] = dict(auth)
    return body


def subscribe(
    client: NotificationsClient,
    name: str,
    target_url: str,
    jsonpath: str,
    auth: Mapping[str, Any],
    extensions: Mapping[str, Any] | None = None,
) -> Registration:
    """Create the subscription ``name``, or update it in place when the user already has it.

    An update keeps a disabled subscription disabled (see :func:`enable`). If several of the
    user's subscriptions share the name, the oldest is updated and the others are returned
    as ``duplicates``.
    """
    body = subscription_body(name, jsonpath, target_url, auth, extensions)
    existing = client.find(name)
    if not existing:
        return Registration("created", client.create(body))
    updated = client.update(existing[0].uuid, body)
    return Registration("updated", updated, tuple(existing[1:]))


def find_one(client: NotificationsClient, name: str) -> Subscription | None:
    """The user's (oldest) subscription called ``name``, or None."""
    found = client.find(name)
    return found[0] if found else None


def enable(client: NotificationsClient, name: str) -> Subscription:
    """Re-enable the subscription ``name`` after Notifications disabled it; clears its error.

    Its ``auth`` and ``extensions`` are sent back unchanged (a PUT without them clears them).
    """
    current = find_one(client, name)
    if current is None:
        raise SubscriptionError(f"user {client.user!r} has no subscription named {name!r}")
    body: dict[str, Any] = {
        "disabled": None,
        "error": None,
        "extensions": dict(current.extensions),
    }
    if current.auth:
        body["auth"] = dict(current.auth)
    return client.update(current.uuid, body)


def unsubscribe(client: NotificationsClient, name: str) -> list[str]:
    """Delete every subscription of the user called ``name``; their uuids."""
    removed = []
    for sub in client.find(name):
        client.delete(sub.uuid)
        removed.append(sub.uuid)
    return removed
