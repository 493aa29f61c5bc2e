"""CloudEvents in, one normalised :class:`Event` out; Pacifica ``data[]`` -> :class:`Upload`.

Three wire shapes are accepted by :func:`parse_http`:

* CloudEvents **0.1** as plain JSON (what Pacifica Notifications delivers): our own
  normaliser maps the 0.1 names to the 1.0 names and lifts the ``extensions`` bag into
  top-level extension attributes.
* CloudEvents **1.0** and **0.3** in structured mode (``application/cloudevents+json``)
  or binary mode (``ce-*`` headers), read with the official ``cloudevents`` SDK
  (``cloudevents.core.bindings.http``).
* A 1.0/0.3 event sent as plain ``application/json`` with ``specversion`` in the body.

Everything else raises :class:`~.errors.InvalidEvent`, which lists every problem found.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from dateutil.parser import isoparse

from .errors import InvalidEvent, UnprocessableEvent

#: Event versions this module understands, by the attribute that names them.
LEGACY_VERSION: Final = "0.1"
SDK_VERSIONS: Final = ("1.0", "0.3")

#: Deepest JSON nesting accepted; Pacifica events are three levels deep. The limit keeps
#: every later step (serialising, matching) far from Python's recursion limit.
MAX_JSON_DEPTH: Final = 64

INGEST_EVENT_TYPE: Final = "org.pacifica.metadata.ingest"

_REQUIRED_ATTRIBUTES: Final = ("id", "source", "type")
_STRING_ATTRIBUTES: Final = ("time", "datacontenttype", "dataschema", "schemaurl", "subject")
_CORE_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "data"}
)
# 0.3 only: the SDK decodes base64 data itself, and schemaurl is 1.0's dataschema.
_SDK_CONSUMED: Final = frozenset({"data_base64", "datacontentencoding", "schemaurl"})

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

_STRUCTURED_JSON: Final = "application/cloudevents+json"
_JSON_MEDIA_TYPE = re.compile(r"^(application|text)/([a-z0-9.\-]+\+)?json$")
#: A JSON escape of a UTF-16 surrogate: the only way JSON read from UTF-8 can hold one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class FileEntry:
    """One Pacifica ``Files`` entry of ``data[]``; ``subdir`` is kept as sent."""

    name: str
    subdir: str
    mimetype: str
    hashtype: str
    hashsum: str
    size: int | None
    file_id: int | None
    mtime: str | None
    ctime: str | None

    @property
    def path(self) -> str:
        """``subdir/name`` as sent (not validated: see :mod:`.paths`)."""
        subdir = self.subdir.rstrip("/")
        return f"{subdir}/{self.name}" if subdir else self.name


@dataclass(frozen=True)
class Upload:
    """The Pacifica upload that an ingest event's ``data[]`` describes."""

    transaction_id: int | None
    submitter: int | str | None
    project: int | str | None
    instrument: int | str | None
    key_values: Mapping[str, str]
    files: tuple[FileEntry, ...]


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
        """Read back what :meth:`to_json` wrote; raises InvalidEvent on anything else."""
        problems: list[str] = []
        document = _load_json(text, problems)
        if problems:
            raise InvalidEvent(problems)
        if not isinstance(document, dict):
            raise InvalidEvent(f"stored event is a JSON {_json_type(document)}, not an object")
        for name in ("specversion", *_REQUIRED_ATTRIBUTES):
            _check_required(document, name, name, problems)
        for name in ("time", "datacontenttype", "dataschema"):
            _check_optional(document, name, name, problems)
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


# --------------------------------------------------------------------------- parse_http


def parse_http(headers: Mapping[str, str], body: bytes) -> Event:
    """Turn one HTTP request (headers, body) into an :class:`Event`.

    Header names are compared case-insensitively. Raises :class:`InvalidEvent` listing
    every problem when the request is not a CloudEvent; never raises anything else.
    """
    lowered = _lower_headers(headers)
    media_type = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type.startswith("application/cloudevents-batch"):
        raise InvalidEvent("batched CloudEvents (application/cloudevents-batch) are not supported")
    if media_type.startswith("application/cloudevents"):
        if media_type != _STRUCTURED_JSON:
            raise InvalidEvent(f"unsupported structured event format {media_type!r}")
        return _check_attributes(_parse_document(body))
    if any(name.startswith("ce-") for name in lowered):
        return _check_attributes(_parse_binary(lowered, body))
    return _check_attributes(_parse_document(body))


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
        if value is not None and any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
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


def _parse_document(body: bytes) -> Event:
    """A JSON body that carries the whole event (0.1, or 1.0/0.3 structured)."""
    problems: list[str] = []
    document = _load_json(body, problems)
    if problems:
        raise InvalidEvent(problems)
    if not isinstance(document, dict):
        raise InvalidEvent(f"the body is a JSON {_json_type(document)}, not an object")
    if "specversion" in document:
        return _parse_structured(document, body)
    if any(name in document for name in ("cloudEventsVersion", "eventID", "eventType")):
        return _parse_legacy(document)
    problems.append("no specversion (CloudEvents 0.3/1.0) or cloudEventsVersion (CloudEvents 0.1)")
    for name in _REQUIRED_ATTRIBUTES:
        if name not in document:
            problems.append(f"missing required attribute {name}")
    raise InvalidEvent(problems)


def _parse_legacy(document: dict[str, Any]) -> Event:
    """Normalise a CloudEvents 0.1 document (our own reader: the SDK has no 0.1)."""
    problems: list[str] = []
    version = document.get("cloudEventsVersion")
    if "cloudEventsVersion" not in document:
        problems.append("missing required attribute cloudEventsVersion")
    elif version != LEGACY_VERSION:
        problems.append(f"unknown cloudEventsVersion {_show(version)} (expected '0.1')")
    for name in _LEGACY_REQUIRED:
        _check_required(document, name, name, problems)
    for name in ("eventTime", "contentType", "schemaURL", "eventTypeVersion"):
        _check_optional(document, name, name, problems)
    bag = document.get("extensions", {})
    if bag is None:
        bag = {}
    if not isinstance(bag, dict):
        problems.append(f"extensions must be an object, not a JSON {_json_type(bag)}")
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


def _parse_structured(document: dict[str, Any], body: bytes) -> Event:
    """A 1.0/0.3 event whose body holds the attributes: checked by us, then by the SDK."""
    problems = _check_sdk_attributes(document)
    if problems:
        raise InvalidEvent(problems)
    message = HTTPMessage(headers={"content-type": _STRUCTURED_JSON}, body=body)
    sdk_event = _read_with_sdk(message)
    return _from_sdk(sdk_event, document, _sdk_data(sdk_event.get_data(), document))


def _parse_binary(headers: dict[str, str], body: bytes) -> Event:
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
        return _load_json(body, problems, what="body")
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
        problems.append(f"unknown specversion {_show(version)} (expected '1.0' or '0.3')")
    for name in _REQUIRED_ATTRIBUTES:
        _check_required(attributes, name, label(name), problems)
    for name in _STRING_ATTRIBUTES:
        _check_optional(attributes, name, label(name), problems)
    time = attributes.get("time")
    if isinstance(time, str):
        problem = _time_problem(time)
        if problem:
            problems.append(f"{label('time')} {_show(time)} {problem}")
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
        value = _load_json(bytes(data), problems, what="base64 data")
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


# --------------------------------------------------------------------------- JSON helpers


class _BadNumber(ValueError):
    """A JSON number Python cannot keep exactly or serialise again."""


def _reject_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"number {text[:40]} is out of range")
    return value


def _load_json(body: str | bytes, problems: list[str], what: str = "body") -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, no overflowing numbers, bounded depth."""
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{what} is not valid UTF-8 (byte {exc.start})")
            return None
    else:
        text = body
    if not text.strip():
        problems.append(f"{what} is empty")
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except _BadNumber as exc:
        problems.append(f"{what} is not valid JSON: {exc}")
        return None
    except RecursionError:
        problems.append(f"{what} is JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return None
    except ValueError as exc:  # JSONDecodeError, and ints beyond Python's digit limit
        problems.append(f"{what} is not valid JSON: {exc}")
        return None
    # the walks over the parsed value only where the text says they can find something
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_JSON_DEPTH and _depth_exceeds(value, MAX_JSON_DEPTH):
        problems.append(f"{what} is JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return None
    if isinstance(body, str) or _SURROGATE_ESCAPE.search(text):
        for path in _unencodable_strings(value):
            problems.append(f"{what} holds a string with an unpaired surrogate at {path}")
            return None
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists/objects deeper than ``limit`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _unencodable_strings(value: Any) -> Iterator[str]:
    """Paths of strings (keys or values) that cannot be written as UTF-8."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not _is_utf8_safe(item):
                yield path
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_utf8_safe(key):
                    yield path
                stack.append((child, f"{path}.{key[:40]}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))


def _is_utf8_safe(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _show(value: Any) -> str:
    """A short, safe rendering of an untrusted value for a problem message."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    return f"a JSON {_json_type(value)}"


def _check_required(
    document: Mapping[str, Any], name: str, label: str, problems: list[str]
) -> None:
    if name not in document:
        problems.append(f"missing required attribute {label}")
        return
    value = document[name]
    if not isinstance(value, str):
        problems.append(f"{label} must be a string, not a JSON {_json_type(value)}")
    elif not value.strip():
        problems.append(f"{label} must not be empty")
    elif not _is_utf8_safe(value):
        problems.append(f"{label} is not valid Unicode")


def _check_optional(
    document: Mapping[str, Any], name: str, label: str, problems: list[str]
) -> None:
    value = document.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        problems.append(f"{label} must be a string, not a JSON {_json_type(value)}")
    elif not _is_utf8_safe(value):
        problems.append(f"{label} is not valid Unicode")


# --------------------------------------------------------------------------- parse_upload

_TRANSACTION_FIELDS: Final = {
    "Transactions._id": "transaction_id",
    "Transactions.submitter": "submitter",
    "Transactions.project": "project",
    "Transactions.instrument": "instrument",
}


def parse_upload(data: Any) -> Upload:
    """Read a Pacifica ingest event's ``data[]`` into an :class:`Upload`.

    TransactionKeyValue values become strings (JSON numbers and booleans are spelt as
    JSON spells them); a key repeated with a different value is a problem, an exact
    repeat is not. Unknown ``destinationTable`` values are ignored. Raises
    :class:`UnprocessableEvent` listing every problem found.
    """
    if not isinstance(data, list):
        raise UnprocessableEvent(
            f"data must be a list of Pacifica metadata entries, not a JSON {_json_type(data)}"
        )
    problems: list[str] = []
    transaction: dict[str, int | str | None] = dict.fromkeys(_TRANSACTION_FIELDS.values())
    key_values: dict[str, str] = {}
    files: list[FileEntry] = []
    for index, entry in enumerate(data):
        where = f"data[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} is a JSON {_json_type(entry)}, not an object")
            continue
        table = entry.get("destinationTable")
        if not isinstance(table, str):
            problems.append(f"{where} has no destinationTable string")
        elif table in _TRANSACTION_FIELDS:
            _read_transaction_field(entry, where, table, transaction, problems)
        elif table == "TransactionKeyValue":
            _read_key_value(entry, where, key_values, problems)
        elif table == "Files":
            file_entry = _read_file(entry, where, problems)
            if file_entry is not None:
                files.append(file_entry)
    if problems:
        raise UnprocessableEvent(problems)
    transaction_id = transaction["transaction_id"]
    return Upload(
        transaction_id=transaction_id if isinstance(transaction_id, int) else None,
        submitter=transaction["submitter"],
        project=transaction["project"],
        instrument=transaction["instrument"],
        key_values=key_values,
        files=tuple(files),
    )


def _read_transaction_field(
    entry: dict[str, Any],
    where: str,
    table: str,
    transaction: dict[str, int | str | None],
    problems: list[str],
) -> None:
    field_name = _TRANSACTION_FIELDS[table]
    value = entry.get("value")
    if table == "Transactions._id":
        if isinstance(value, str) and value.strip().isdecimal():
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: {table} value must be an integer, not {_show(value)}")
            return
    elif isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        problems.append(f"{where}: {table} value must be an integer or a non-empty string")
        return
    elif isinstance(value, str) and not _is_utf8_safe(value):
        problems.append(f"{where}: {table} value is not valid Unicode")
        return
    previous = transaction[field_name]
    if previous is not None and previous != value:
        problems.append(f"{where}: {table} given twice ({_show(previous)} and {_show(value)})")
        return
    transaction[field_name] = value


def _key_value_text(value: Any) -> str | None:
    """A TransactionKeyValue value as text, or None when it is not a scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def _read_key_value(
    entry: dict[str, Any], where: str, key_values: dict[str, str], problems: list[str]
) -> None:
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        problems.append(f"{where}: TransactionKeyValue needs a non-empty string key")
        return
    if not _is_utf8_safe(key):
        problems.append(f"{where}: TransactionKeyValue key is not valid Unicode")
        return
    if "value" not in entry:
        problems.append(f"{where}: TransactionKeyValue {key!r} has no value")
        return
    text = _key_value_text(entry["value"])
    if text is None:
        problems.append(
            f"{where}: TransactionKeyValue {key!r} value must be a string or number, "
            f"not a JSON {_json_type(entry['value'])}"
        )
        return
    if not _is_utf8_safe(text):
        problems.append(f"{where}: TransactionKeyValue {key!r} value is not valid Unicode")
        return
    if key in key_values and key_values[key] != text:
        problems.append(
            f"{where}: TransactionKeyValue {key!r} given twice "
            f"({_show(key_values[key])} and {_show(text)})"
        )
        return
    key_values[key] = text


def _read_file(entry: dict[str, Any], where: str, problems: list[str]) -> FileEntry | None:
    before = len(problems)

    def text(name: str, required: bool, default: str | None = None) -> str | None:
        value = entry.get(name, default)
        if value is None:
            if required:
                problems.append(f"{where}: Files entry has no {name}")
            return None
        if not isinstance(value, str):
            problems.append(
                f"{where}: Files {name} must be a string, not a JSON {_json_type(value)}"
            )
            return None
        if required and not value:
            problems.append(f"{where}: Files {name} must not be empty")
            return None
        if not _is_utf8_safe(value):
            problems.append(f"{where}: Files {name} is not valid Unicode")
            return None
        return value

    def integer(name: str) -> int | None:
        value = entry.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(
                f"{where}: Files {name} must be a non-negative integer, not {_show(value)}"
            )
            return None
        return value

    name = text("name", required=True)
    hashsum = text("hashsum", required=True)
    mimetype = text("mimetype", required=True)
    subdir = text("subdir", required=False, default="")
    hashtype = text("hashtype", required=False, default="sha1")
    mtime = text("mtime", required=False)
    ctime = text("ctime", required=False)
    size = integer("size")
    file_id = integer("_id")
    if len(problems) > before:
        return None
    assert name is not None and hashsum is not None and mimetype is not None
    return FileEntry(
        name=name,
        subdir=subdir or "",
        mimetype=mimetype,
        hashtype=hashtype or "sha1",
        hashsum=hashsum,
        size=size,
        file_id=file_id,
        mtime=mtime,
        ctime=ctime,
    )


def transaction_id_of(data: Any) -> int | None:
    """The ``Transactions._id`` of a Pacifica ``data[]``, or None; never raises.

    A cheap look for the task list's search; :func:`parse_upload` does the real reading.
    """
    if not isinstance(data, list):
        return None
    for entry in data:
        if isinstance(entry, dict) and entry.get("destinationTable") == "Transactions._id":
            value = entry.get("value")
            if isinstance(value, str) and value.strip().isdecimal():
                return int(value.strip())
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return None
    return None
