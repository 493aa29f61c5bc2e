"""CloudEvents 0.1 (what Pacifica Notifications delivers): our own reader, the SDK has none."""

from __future__ import annotations

from typing import Any, Final

from ..errors import InvalidEvent
from .checks import check_optional, check_required
from .event import LEGACY_VERSION, Event
from .jsontext import json_type, show

# CloudEvents 0.1 attribute name -> normalised (1.0) name.
_LEGACY_NAMES: Final = {
    "cloudEventsVersion": "specversion",
    "eventID": "id",
    "source": "source",
    "eventType": "type",
    "eventTime": "time",
    "contentType": "datacontenttype",
    "schemaURL": "dataschema",
    "eventTypeVersion": "eventtypeversion",
}

_LEGACY_REQUIRED: Final = ("eventID", "source", "eventType")


def parse_legacy(document: dict[str, Any]) -> Event:
    """Normalise a CloudEvents 0.1 document (our own reader: the SDK has no 0.1)."""
    problems: list[str] = []
    version = document.get("cloudEventsVersion")
    if "cloudEventsVersion" not in document:
        problems.append("missing required attribute cloudEventsVersion")
    elif version != LEGACY_VERSION:
        problems.append(f"unknown cloudEventsVersion {show(version)} (expected '0.1')")
    for name in _LEGACY_REQUIRED:
        check_required(document, name, name, problems)
    for name in ("eventTime", "contentType", "schemaURL", "eventTypeVersion"):
        check_optional(document, name, name, problems)
    bag = document.get("extensions", {})
    if bag is None:
        bag = {}
    if not isinstance(bag, dict):
        problems.append(f"extensions must be an object, not a JSON {json_type(bag)}")
        bag = {}
    if problems:
        raise InvalidEvent(problems)
    extensions: dict[str, Any] = {
        name: value
        for name, value in document.items()
        if name not in _LEGACY_NAMES and name not in ("extensions", "data")
    }
    extensions.update(bag)
    if "eventTypeVersion" in document and document["eventTypeVersion"] is not None:
        extensions["eventtypeversion"] = document["eventTypeVersion"]
    return Event(
        specversion=LEGACY_VERSION,
        id=document["eventID"],
        source=document["source"],
        type=document["eventType"],
        time=document.get("eventTime"),
        datacontenttype=document.get("contentType"),
        dataschema=document.get("schemaURL"),
        extensions=extensions,
        data=document.get("data"),
    )
