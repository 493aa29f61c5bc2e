"""Validation of the paths and file names that arrive in events.

Anything an event names (a File's ``subdir`` and ``name``, a config's ``in_dir`` and ``out_dir``)
is untrusted. The functions here accept only plain relative POSIX paths and single file names and
raise :class:`PathError` (an :class:`~.errors.UnprocessableEvent`, so the task ends 422) naming
the field and the offending value otherwise.

Rules, shared by directories and file names:

* text only; at most :data:`MAX_RELATIVE_DIR_BYTES` (whole directory) or :data:`MAX_NAME_BYTES`
  (one component) in UTF-8;
* no control characters (Unicode ``Cc``), lone surrogates, line or paragraph separators,
  bidirectional-override characters or byte-order marks: they break logs, INI files and
  what a user sees;
* no backslash (a separator elsewhere), no absolute path, no ``..`` component and no other
  component made of dots only (``...`` climbs on some systems); a lone ``.`` is dropped;
* no component that Unicode compatibility normalisation (NFKC) turns into one of the above,
  such as fullwidth full stops or solidus (U+FF0E, U+FF0F), in case a later system
  normalises names;
* no Windows drive prefix (``C:``) on a file name or a directory's first component.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path, PurePosixPath

from .errors import UnprocessableEvent

#: Longest relative directory accepted, in UTF-8 bytes (well under Linux's PATH_MAX of 4096,
#: leaving room for the work directory it is joined to).
MAX_RELATIVE_DIR_BYTES = 1024

#: Longest single component or file name, in UTF-8 bytes (Linux's NAME_MAX).
MAX_NAME_BYTES = 255

#: Most components a relative directory may have.
MAX_DEPTH = 32

#: Longest ``repr`` of a rejected value quoted in a message.
QUOTE_LIMIT = 80

#: Format characters that reorder or hide text (bidirectional controls, byte-order mark).
_INVISIBLE_FORMAT_CHARS = frozenset(
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)

#: Unicode categories never accepted: controls, surrogates, line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


class PathError(UnprocessableEvent):
    """A path or file name from an event is unsafe; ``what`` names the field, ``value`` is it."""

    def __init__(self, what: str, value: object, reason: str) -> None:
        super().__init__(f"{what} = {quote(value)}: {reason}")
        self.what = what
        self.value = value
        self.reason = reason


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """Return ``repr(value)`` shortened to about ``limit`` characters, safe to put in a message."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def forbidden_character(value: str) -> str | None:
    """Describe the first character of ``value`` never allowed in event text, or None."""
    for char in value:
        if char in _INVISIBLE_FORMAT_CHARS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return f"U+{ord(char):04X} ({unicodedata.name(char, 'control character')})"
    return None


def _check_text(value: object, what: str, max_bytes: int) -> str:
    """Common checks: type, length, forbidden characters, backslash."""
    if not isinstance(value, str):
        raise PathError(what, value, f"must be text, not {type(value).__name__}")
    if len(value) > max_bytes:
        raise PathError(what, value, f"longer than {max_bytes} bytes")
    bad = forbidden_character(value)
    if bad is not None:
        raise PathError(what, value, f"contains the forbidden character {bad}")
    if len(value.encode("utf-8")) > max_bytes:
        raise PathError(what, value, f"longer than {max_bytes} bytes in UTF-8")
    if "\\" in value:
        raise PathError(what, value, "contains a backslash")
    return value


def _is_dots(text: str) -> bool:
    return text != "" and text.strip(".") == ""


def _check_component(component: str, value: str, what: str) -> None:
    """Reject a single path component (already split on ``/``, never empty or ``.``)."""
    if len(component.encode("utf-8")) > MAX_NAME_BYTES:
        raise PathError(what, value, f"a component is longer than {MAX_NAME_BYTES} bytes")
    if component == "..":
        raise PathError(what, value, "contains a '..' component")
    if _is_dots(component):
        raise PathError(what, value, f"component {component!r} is made of dots only")
    folded = unicodedata.normalize("NFKC", component)
    if "/" in folded or "\\" in folded or _is_dots(folded):
        raise PathError(
            what, value, f"component {component!r} normalises to {folded!r} (a separator or dots)"
        )


def _has_drive_prefix(component: str) -> bool:
    folded = unicodedata.normalize("NFKC", component)
    return len(folded) >= 2 and folded[1] == ":" and folded[0].isascii() and folded[0].isalpha()


def safe_relative_dir(value: str, what: str) -> PurePosixPath:
    """Validate a relative directory from an event and return it normalised.

    ``""``, ``"."`` and ``"./"`` mean the top level (``PurePosixPath(".")``); a trailing ``/``,
    empty components and ``.`` components are dropped. ``what`` names the field in the error.
    """
    _check_text(value, what, MAX_RELATIVE_DIR_BYTES)
    if value.startswith("/"):
        raise PathError(what, value, "is an absolute path")
    components = [part for part in value.split("/") if part not in ("", ".")]
    for component in components:
        _check_component(component, value, what)
    if components and _has_drive_prefix(components[0]):
        raise PathError(what, value, "starts with a drive letter")
    if len(components) > MAX_DEPTH:
        raise PathError(what, value, f"has more than {MAX_DEPTH} components")
    return PurePosixPath(*components)


def safe_file_name(value: str, what: str) -> str:
    """Validate a single file name from an event and return it unchanged."""
    _check_text(value, what, MAX_NAME_BYTES)
    if value == "":
        raise PathError(what, value, "is empty")
    if "/" in value:
        raise PathError(what, value, "contains '/' (a file name must be a single component)")
    if value in (".", ".."):
        raise PathError(what, value, "is not a file name")
    _check_component(value, value, what)
    if _has_drive_prefix(value):
        raise PathError(what, value, "starts with a drive letter")
    return value


def resolve_inside(root: Path, relative: PurePosixPath) -> Path:
    """Join ``relative`` to ``root`` and return the resolved result if it stays inside ``root``.

    ``relative`` is checked again with :func:`safe_relative_dir`; symbolic links already on disk
    are followed, so a link under ``root`` that points elsewhere is refused. The check is only as
    good as the file system at the time of the call: create what follows under ``root`` yourself.
    """
    checked = safe_relative_dir(str(relative), "path")
    real_root = root.resolve()
    candidate = (real_root / checked).resolve()
    if not candidate.is_relative_to(real_root):
        raise PathError(
            "path", str(relative), f"resolves to {str(candidate)!r}, outside {str(real_root)!r}"
        )
    return candidate
