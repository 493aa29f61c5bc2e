"""The normalised :class:`Event`: CloudEvents 1.0 attribute names, whatever version came in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidEvent
from .checks import REQUIRED_ATTRIBUTES, check_optional, check_required
from .jsontext import json_type, load_json
from .legacy import LEGACY_VERSION, legacy_attributes


@dataclass(frozen=True)
class Event:
    """A CloudEvent, normalised to the CloudEvents 1.0 attribute names.

    ``specversion`` is the version the event arrived in ("0.1", "0.3" or "1.0"); ``time``
    is the sender's text (0.1 events from Pacifica carry no timezone). ``data`` is parsed JSON.
    """

    specversion: str
    id: str
    source: str
    type: str
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    data: Any = None

    def to_legacy(self) -> dict[str, Any]:
        """The CloudEvents 0.1 JSON shape, as Pacifica Notifications delivers it.

        This is the document routing expressions are matched against, and what
        ``pacifica.downloader.Downloader.cloudevent()`` reads.
        """
        extensions = dict(self.extensions)
        legacy: dict[str, Any] = {
            "cloudEventsVersion": LEGACY_VERSION,
            "eventType": self.type,
            "source": self.source,
            "eventID": self.id,
        }
        type_version = extensions.pop("eventtypeversion", None)
        if type_version is not None:
            legacy["eventTypeVersion"] = type_version
        if self.time is not None:
            legacy["eventTime"] = self.time
        if self.dataschema is not None:
            legacy["schemaURL"] = self.dataschema
        if self.datacontenttype is not None:
            legacy["contentType"] = self.datacontenttype
        legacy["extensions"] = extensions
        if self.data is not None:
            legacy["data"] = self.data
        return legacy

    def to_json(self) -> str:
        """This event as JSON text (what the store keeps); :meth:`from_json` reads it back."""
        return json.dumps(
            {
                "specversion": self.specversion,
                "id": self.id,
                "source": self.source,
                "type": self.type,
                "time": self.time,
                "datacontenttype": self.datacontenttype,
                "dataschema": self.dataschema,
                "extensions": dict(self.extensions),
                "data": self.data,
            },
            allow_nan=False,
            sort_keys=False,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Read back what the store keeps: what :meth:`to_json` wrote, or a CloudEvents 0.1
        document as it was received (read again as it was then); raises InvalidEvent on
        anything else."""
        problems: list[str] = []
        document = load_json(text, problems)
        if problems:
            raise InvalidEvent(problems)
        if not isinstance(document, dict):
            raise InvalidEvent(f"stored event is a JSON {json_type(document)}, not an object")
        if "specversion" not in document and "cloudEventsVersion" in document:
            return parse_legacy(document)
        for name in ("specversion", *REQUIRED_ATTRIBUTES):
            check_required(document, name, name, problems)
        for name in ("time", "datacontenttype", "dataschema"):
            check_optional(document, name, name, problems)
        extensions = document.get("extensions", {})
        if not isinstance(extensions, dict):
            problems.append("extensions must be an object")
        if problems:
            raise InvalidEvent(problems)
        return cls(
            specversion=document["specversion"],
            id=document["id"],
            source=document["source"],
            type=document["type"],
            time=document.get("time"),
            datacontenttype=document.get("datacontenttype"),
            dataschema=document.get("dataschema"),
            extensions=extensions,
            data=document.get("data"),
        )


def parse_legacy(document: dict[str, Any]) -> Event:
    """Normalise a CloudEvents 0.1 document (our own reader: the SDK has no 0.1)."""
    return Event(**legacy_attributes(document))
