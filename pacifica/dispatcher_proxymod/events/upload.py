"""Pacifica's ``data[]`` of an ingest event -> :class:`Upload` (transaction, key/values, files)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import UnprocessableEvent
from .jsontext import is_utf8_safe, json_type, show

INGEST_EVENT_TYPE: Final = "org.pacifica.metadata.ingest"


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
            f"data must be a list of Pacifica metadata entries, not a JSON {json_type(data)}"
        )
    problems: list[str] = []
    transaction: dict[str, int | str | None] = dict.fromkeys(_TRANSACTION_FIELDS.values())
    key_values: dict[str, str] = {}
    files: list[FileEntry] = []
    for index, entry in enumerate(data):
        where = f"data[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} is a JSON {json_type(entry)}, not an object")
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
            problems.append(f"{where}: {table} value must be an integer, not {show(value)}")
            return
    elif isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        problems.append(f"{where}: {table} value must be an integer or a non-empty string")
        return
    elif isinstance(value, str) and not is_utf8_safe(value):
        problems.append(f"{where}: {table} value is not valid Unicode")
        return
    previous = transaction[field_name]
    if previous is not None and previous != value:
        problems.append(f"{where}: {table} given twice ({show(previous)} and {show(value)})")
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
    if not is_utf8_safe(key):
        problems.append(f"{where}: TransactionKeyValue key is not valid Unicode")
        return
    if "value" not in entry:
        problems.append(f"{where}: TransactionKeyValue {key!r} has no value")
        return
    text = _key_value_text(entry["value"])
    if text is None:
        problems.append(
            f"{where}: TransactionKeyValue {key!r} value must be a string or number, "
            f"not a JSON {json_type(entry['value'])}"
        )
        return
    if not is_utf8_safe(text):
        problems.append(f"{where}: TransactionKeyValue {key!r} value is not valid Unicode")
        return
    if key in key_values and key_values[key] != text:
        problems.append(
            f"{where}: TransactionKeyValue {key!r} given twice "
            f"({show(key_values[key])} and {show(text)})"
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
                f"{where}: Files {name} must be a string, not a JSON {json_type(value)}"
            )
            return None
        if required and not value:
            problems.append(f"{where}: Files {name} must not be empty")
            return None
        if not is_utf8_safe(value):
            problems.append(f"{where}: Files {name} is not valid Unicode")
            return None
        return value

    def integer(name: str) -> int | None:
        value = entry.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(
                f"{where}: Files {name} must be a non-negative integer, not {show(value)}"
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
