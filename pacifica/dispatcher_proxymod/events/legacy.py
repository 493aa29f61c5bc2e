"""CloudEvents 0.1 (what Pacifica Notifications delivers): our own reader, the SDK has none.

It gives the normalised attributes; :mod:`.event` builds the :class:`~.event.Event` of them.
"""

from __future__ import annotations

from typing import Any, Final

from ..errors import InvalidEvent
from .checks import check_optional, check_required
from .jsontext import json_type, show

#: The CloudEvents version Pacifica Notifications delivers (``cloudEventsVersion``).
LEGACY_VERSION: Final = "0.1"

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


def legacy_attributes(document: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvents 0.1 document's attributes under the 1.0 names (the fields of an Event);
    raises InvalidEvent listing every problem."""
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
    return dict(
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
