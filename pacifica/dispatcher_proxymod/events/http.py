"""One HTTP request (headers, body) -> one :class:`Event`: which reader the request needs."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import InvalidEvent
from .checks import REQUIRED_ATTRIBUTES
from .event import Event, parse_legacy
from .jsontext import json_type, load_json
from .sdk import STRUCTURED_JSON, parse_binary, parse_structured


def parse_http(headers: Mapping[str, str], body: bytes | str) -> Event:
    """Turn one HTTP request (headers, body) into an :class:`Event`.

    Header names are compared case-insensitively. ``body`` is the bytes received, or their
    text when the caller decoded them as UTF-8 already (a large body is then not held twice).
    Raises :class:`InvalidEvent` listing every problem when the request is not a CloudEvent;
    never raises anything else.
    """
    lowered = _lower_headers(headers)
    media_type = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type.startswith("application/cloudevents-batch"):
        raise InvalidEvent("batched CloudEvents (application/cloudevents-batch) are not supported")
    if media_type.startswith("application/cloudevents"):
        if media_type != STRUCTURED_JSON:
            raise InvalidEvent(f"unsupported structured event format {media_type!r}")
        return _check_attributes(_parse_document(body))
    if any(name.startswith("ce-") for name in lowered):
        return _check_attributes(parse_binary(lowered, _as_bytes(body)))
    return _check_attributes(_parse_document(body))


#: The control characters (C0, DEL and C1) the CloudEvents type system refuses in a String.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _check_attributes(event: Event) -> Event:
    """Refuse control characters in the string attributes (the CloudEvents type system)."""
    problems = [
        f"{name} contains a control character"
        for name, value in (
            ("id", event.id),
            ("source", event.source),
            ("type", event.type),
            ("time", event.time),
        )
        if value is not None and _CONTROL.search(value)
    ]
    if problems:
        raise InvalidEvent(problems)
    return event


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered: dict[str, str] = {}
    try:
        items = list(headers.items())
    except Exception as exc:  # an odd mapping must not escape as another exception
        raise InvalidEvent(f"unreadable headers: {exc}") from None
    for name, value in items:
        if isinstance(name, str) and isinstance(value, str):
            lowered[name.strip().lower()] = value
    return lowered


def _as_bytes(body: bytes | str) -> bytes:
    """The body as the SDK reads it (bytes); the text of a decoded one is UTF-8."""
    return body.encode("utf-8") if isinstance(body, str) else body


def _parse_document(body: bytes | str) -> Event:
    """A JSON body that carries the whole event (0.1, or 1.0/0.3 structured)."""
    problems: list[str] = []
    document = load_json(body, problems)
    if problems:
        raise InvalidEvent(problems)
    if not isinstance(document, dict):
        raise InvalidEvent(f"the body is a JSON {json_type(document)}, not an object")
    if "specversion" in document:
        return parse_structured(document, _as_bytes(body))
    if any(name in document for name in ("cloudEventsVersion", "eventID", "eventType")):
        return parse_legacy(document)
    problems.append("no specversion (CloudEvents 0.3/1.0) or cloudEventsVersion (CloudEvents 0.1)")
    for name in REQUIRED_ATTRIBUTES:
        if name not in document:
            problems.append(f"missing required attribute {name}")
    raise InvalidEvent(problems)
