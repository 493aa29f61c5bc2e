"""The checks of one event attribute (required or optional string), shared by every reader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .jsontext import is_utf8_safe, json_type

#: The attributes every CloudEvents 0.3/1.0 event has (0.1 spells them eventID, eventType).
REQUIRED_ATTRIBUTES: Final = ("id", "source", "type")


def check_required(document: Mapping[str, Any], name: str, label: str, problems: list[str]) -> None:
    """Note in ``problems`` when ``name`` is missing, not a string, blank or not Unicode."""
    if name not in document:
        problems.append(f"missing required attribute {label}")
        return
    value = document[name]
    if not isinstance(value, str):
        problems.append(f"{label} must be a string, not a JSON {json_type(value)}")
    elif not value.strip():
        problems.append(f"{label} must not be empty")
    elif not is_utf8_safe(value):
        problems.append(f"{label} is not valid Unicode")


def check_optional(document: Mapping[str, Any], name: str, label: str, problems: list[str]) -> None:
    """Note in ``problems`` when ``name`` is present but not a string or not Unicode."""
    value = document.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        problems.append(f"{label} must be a string, not a JSON {json_type(value)}")
    elif not is_utf8_safe(value):
        problems.append(f"{label} is not valid Unicode")
