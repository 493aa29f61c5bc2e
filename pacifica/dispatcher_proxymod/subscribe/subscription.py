"""One subscription (an *event match*) as Notifications reports it; the package's error."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import DispatcherError

_MASK: Final = "********"
MESSAGE_LIMIT: Final = 400


class SubscriptionError(DispatcherError):
    """Notifications refused a request, could not be reached, or the input is unusable."""


@dataclass(frozen=True)
class Subscription:
    """One subscription (event match) as Notifications reports it."""

    uuid: str
    name: str
    jsonpath: str
    target_url: str
    user: str
    disabled: str | None = None
    error: str | None = None
    auth: Mapping[str, Any] = field(default_factory=dict)
    extensions: Mapping[str, Any] = field(default_factory=dict)
    created: str | None = None
    updated: str | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Subscription:
        """Read one entry of Notifications' answer."""
        try:
            return cls(
                uuid=str(document["uuid"]),
                name=str(document["name"]),
                jsonpath=str(document.get("jsonpath", "")),
                target_url=str(document.get("target_url", "")),
                user=str(document.get("user", "")),
                disabled=document.get("disabled"),
                error=document.get("error"),
                auth=dict(document.get("auth") or {}),
                extensions=dict(document.get("extensions") or {}),
                created=document.get("created"),
                updated=document.get("updated"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SubscriptionError(
                f"Notifications answered with a subscription we cannot read ({exc}): "
                f"{json.dumps(document)[:MESSAGE_LIMIT]}"
            ) from None

    @property
    def enabled(self) -> bool:
        """True unless Notifications disabled it."""
        return not self.disabled

    def to_json(self, reveal_credentials: bool = False) -> dict[str, Any]:
        """The fields as a JSON object; credentials are masked unless asked for."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "user": self.user,
            "target_url": self.target_url,
            "enabled": self.enabled,
            "disabled": self.disabled,
            "error": self.error,
            "auth": dict(self.auth) if reveal_credentials else masked_auth(self.auth),
            "extensions": dict(self.extensions),
            "created": self.created,
            "updated": self.updated,
            "jsonpath": self.jsonpath,
        }

    def describe(self) -> str:
        """One line for people: name, uuid, target and state (with Notifications' error)."""
        state = "enabled" if self.enabled else f"DISABLED since {self.disabled}"
        line = f"subscription {self.name!r} ({self.uuid}) of {self.user} -> {self.target_url}: "
        line += state
        if self.error:
            line += f"; Notifications recorded: {one_line(self.error)}"
        return line


def masked_auth(auth: Mapping[str, Any]) -> dict[str, Any]:
    """``auth`` with the password or token replaced by asterisks."""
    shown: dict[str, Any] = json.loads(json.dumps(dict(auth)))
    basic = shown.get("basic")
    if isinstance(basic, dict) and "password" in basic:
        basic["password"] = _MASK
    header = shown.get("header")
    if isinstance(header, dict) and "credentials" in header:
        header["credentials"] = _MASK
    return shown


def one_line(text: str) -> str:
    return " ".join(text.split())[:MESSAGE_LIMIT]
