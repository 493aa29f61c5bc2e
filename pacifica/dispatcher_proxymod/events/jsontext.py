"""Strict JSON for untrusted bodies, and the short renderings problem messages use."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any, Final

import orjson

#: Deepest JSON nesting accepted; Pacifica events are three levels deep. The limit keeps
#: every later step (serialising, matching) far from Python's recursion limit.
MAX_JSON_DEPTH: Final = 64

#: A JSON escape of a UTF-16 surrogate: the only way JSON read from UTF-8 can hold one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _BadNumber(ValueError):
    """A JSON number Python cannot keep exactly or serialise again."""


def _reject_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"number {text[:40]} is out of range")
    return value


#: orjson reads an integer beyond 64 bits as a float; a float this large may be one.
_INT_AS_FLOAT: Final = float(2**63)
#: Such an integer has 19 digits or more: a text without such a run holds none. The text is
#: mapped to "9" for a digit, " " for anything else, and searched for 19 nines (a regular
#: expression is ten times slower; a walk over the parsed value four times).
_DIGITS_AS_NINES: Final = bytes(0x39 if 0x30 <= code <= 0x39 else 0x20 for code in range(256))
_LONG_RUN: Final = b"9" * 19
#: Beyond this size the walk is taken at once (the search would copy the body twice).
_SEARCH_AT_MOST: Final = 64 * 1024


def load_json(body: str | bytes, problems: list[str], what: str = "body") -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, no overflowing numbers, bounded depth.

    orjson reads it first: it refuses everything this refuses (invalid UTF-8, a lone
    surrogate, NaN and Infinity, a number that overflows a float, nesting beyond 1024, an empty
    body), and the standard library's parser then says why, or reads what only orjson refuses
    (an integer of hundreds of digits). An integer beyond 64 bits, which orjson reads as a
    float, is read again by the standard parser, so the value is always the one it gives.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if not _may_hold_a_long_integer(body) or not _holds_a_large_float(value):
            if _too_deep(body, value):
                problems.append(f"{what} is JSON nested deeper than {MAX_JSON_DEPTH} levels")
                return None
            return value
    return _load_json_slowly(body, problems, what)


def _too_deep(body: str | bytes, value: Any) -> bool:
    """Whether ``value`` (read from ``body``) nests deeper than :data:`MAX_JSON_DEPTH`; the walk
    only where the text says it can find something."""
    if isinstance(body, str):
        brackets = body.count("[") + body.count("{")
    else:
        brackets = body.count(b"[") + body.count(b"{")
    return brackets > MAX_JSON_DEPTH and _depth_exceeds(value, MAX_JSON_DEPTH)


def _may_hold_a_long_integer(body: str | bytes) -> bool:
    """Whether ``body`` may hold 19 digits in a row (for a small body: whether it does)."""
    if len(body) > _SEARCH_AT_MOST:
        return True
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return _LONG_RUN in raw.translate(_DIGITS_AS_NINES)


def _holds_a_large_float(value: Any) -> bool:
    """Whether a float of ``value`` is at least 2**63 in size (no recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and abs(item) >= _INT_AS_FLOAT:
            return True
    return False


def _load_json_slowly(body: str | bytes, problems: list[str], what: str) -> Any:
    """The standard library's parser with the checks of :func:`load_json`."""
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
    if _too_deep(text, value):
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
            if not is_utf8_safe(item):
                yield path
        elif isinstance(item, dict):
            for key, child in item.items():
                if not is_utf8_safe(key):
                    yield path
                stack.append((child, f"{path}.{key[:40]}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))


def is_utf8_safe(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_type(value: Any) -> str:
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


def show(value: Any) -> str:
    """A short, safe rendering of an untrusted value for a problem message."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    return f"a JSON {json_type(value)}"
