"""CloudEvents 1.0 and 0.3, structured and binary: our checks, then the official SDK's reader.

The SDK is ``cloudevents.core.bindings.http``; its many error types all become
:class:`~.errors.InvalidEvent`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from dateutil.parser import isoparse

from ..errors import InvalidEvent
from .checks import REQUIRED_ATTRIBUTES, check_optional, check_required
from .event import Event
from .jsontext import MAX_JSON_DEPTH, load_json, show

#: The CloudEvents versions read with the SDK (0.1 is ours: see :mod:`.legacy`).
SDK_VERSIONS: Final = ("1.0", "0.3")

_STRING_ATTRIBUTES: Final = ("time", "datacontenttype", "dataschema", "schemaurl", "subject")

_CORE_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "data"}
)

# 0.3 only: the SDK decodes base64 data itself, and schemaurl is 1.0's dataschema.
_SDK_CONSUMED: Final = frozenset({"data_base64", "datacontentencoding", "schemaurl"})

STRUCTURED_JSON: Final = "application/cloudevents+json"

_JSON_MEDIA_TYPE = re.compile(r"^(application|text)/([a-z0-9.\-]+\+)?json$")


def parse_structured(document: dict[str, Any], body: bytes) -> Event:
    """A 1.0/0.3 event whose body holds the attributes: checked by us, then by the SDK."""
    problems = _check_sdk_attributes(document)
    if problems:
        raise InvalidEvent(problems)
    message = HTTPMessage(headers={"content-type": STRUCTURED_JSON}, body=body)
    sdk_event = _read_with_sdk(message)
    return _from_sdk(sdk_event, document, _sdk_data(sdk_event.get_data(), document))


def parse_binary(headers: dict[str, str], body: bytes) -> Event:
    """A 1.0/0.3 event in binary mode: attributes in ``ce-*`` headers, data in the body."""
    attributes: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in headers.items():
        if name.startswith("ce-"):
            attribute = name[3:]
            if not attribute:
                problems.append("header 'ce-' names no attribute")
            attributes[attribute] = _percent_decode(value, problems, name)
    if "content-type" in headers:
        attributes["datacontenttype"] = headers["content-type"]
    problems.extend(_check_sdk_attributes(attributes, header_names=True))
    data = _binary_data(body, attributes.get("datacontenttype"), problems)
    if problems:
        raise InvalidEvent(problems)
    message = HTTPMessage(headers=dict(headers), body=body)
    sdk_event = _read_with_sdk(message)
    return _from_sdk(sdk_event, attributes, data)


def _percent_decode(value: str, problems: list[str], header: str) -> str:
    """Percent-decode a ``ce-*`` header value strictly (invalid UTF-8 is a problem)."""
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeError:
        problems.append(f"header {header} is not percent-encoded UTF-8")
        return value


def _binary_data(body: bytes, content_type: Any, problems: list[str]) -> Any:
    """The body of a binary-mode event: JSON when its content type says so, else text."""
    if not body:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower() if content_type else ""
    if not media_type or _JSON_MEDIA_TYPE.match(media_type):
        return load_json(body, problems, what="body")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"body is not valid UTF-8 (byte {exc.start})")
        return None


def _check_sdk_attributes(attributes: Mapping[str, Any], header_names: bool = False) -> list[str]:
    """Our own checks of a 1.0/0.3 event, phrased for people, before the SDK's."""
    problems: list[str] = []

    def label(name: str) -> str:
        return f"ce-{name} header" if header_names else name

    version = attributes.get("specversion")
    if "specversion" not in attributes:
        problems.append(f"missing required attribute {label('specversion')}")
    elif version not in SDK_VERSIONS:
        problems.append(f"unknown specversion {show(version)} (expected '1.0' or '0.3')")
    for name in REQUIRED_ATTRIBUTES:
        check_required(attributes, name, label(name), problems)
    for name in _STRING_ATTRIBUTES:
        check_optional(attributes, name, label(name), problems)
    time = attributes.get("time")
    if isinstance(time, str):
        problem = _time_problem(time)
        if problem:
            problems.append(f"{label('time')} {show(time)} {problem}")
    return problems


def _time_problem(text: str) -> str | None:
    """Why ``text`` is not a timestamp the SDK accepts (RFC 3339 with a zone), or None."""
    try:
        moment = isoparse(text)
    except (ValueError, OverflowError, TypeError):
        return "is not an RFC 3339 timestamp"
    if moment.tzinfo is None:
        return "has no timezone (CloudEvents 0.3/1.0 require one)"
    return None


def _read_with_sdk(message: HTTPMessage) -> BaseCloudEvent:
    """Parse with the official SDK; its many error types all become InvalidEvent."""
    try:
        return from_http_event(message)
    except CloudEventValidationError as exc:
        raise InvalidEvent(
            f"{name}: {error}" for name, errors in exc.errors.items() for error in errors
        ) from None
    except (BaseCloudEventException, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise InvalidEvent(f"CloudEvents SDK rejected the event: {exc}") from None
    except RecursionError:
        raise InvalidEvent(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None


def _sdk_data(data: Any, document: Mapping[str, Any]) -> Any:
    """Structured data as parsed JSON; base64 data (decoded by the SDK) is read as text/JSON."""
    if not isinstance(data, bytes | bytearray):
        return data
    problems: list[str] = []
    media_type = str(document.get("datacontenttype") or "").split(";", 1)[0].strip().lower()
    if not media_type or _JSON_MEDIA_TYPE.match(media_type):
        value = load_json(bytes(data), problems, what="base64 data")
    else:
        try:
            value = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"base64 data is not valid UTF-8 (byte {exc.start})")
    if problems:
        raise InvalidEvent(problems)
    return value


def _from_sdk(sdk_event: BaseCloudEvent, raw: Mapping[str, Any], data: Any) -> Event:
    """Build our Event from an SDK event, keeping the sender's own ``time`` text."""
    attributes = sdk_event.get_attributes()
    extensions = {
        name: value
        for name, value in attributes.items()
        if name not in _CORE_ATTRIBUTES and name not in _SDK_CONSUMED
    }
    dataschema = attributes.get("dataschema", attributes.get("schemaurl"))
    time = raw.get("time")
    return Event(
        specversion=str(attributes["specversion"]),
        id=str(attributes["id"]),
        source=str(attributes["source"]),
        type=str(attributes["type"]),
        time=time if isinstance(time, str) else None,
        datacontenttype=attributes.get("datacontenttype"),
        dataschema=dataschema if isinstance(dataschema, str) else None,
        extensions=extensions,
        data=data,
    )
