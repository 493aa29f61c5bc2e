"""INI text: which values survive being written unchanged, and the writing itself."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ...paths import forbidden_character, quote
from .schema import MAX_VALUE_CHARS

_SECTION_NAME = re.compile(r"[A-Za-z0-9_]+")
_KEY_NAME = re.compile(r"[a-z0-9_]+")
_COMMENT_AFTER_SPACE = re.compile(r"\s[#;]")


def ini_value_problem(value: object) -> str | None:
    """Say why ``value`` cannot be written as an INI value unchanged, or return None."""
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if len(value) > MAX_VALUE_CHARS:
        return f"longer than {MAX_VALUE_CHARS} characters"
    bad = forbidden_character(value)
    if bad is not None:
        return f"contains the forbidden character {bad} (INI injection)"
    if value != value.strip():
        return "has leading or trailing whitespace (an INI reader would strip it)"
    if "%" in value:
        return "contains '%' (INI interpolation)"
    if value.startswith("["):
        return "starts with '[' (an INI section header)"
    if value.startswith(("#", ";")) or _COMMENT_AFTER_SPACE.search(value):
        return "contains '#' or ';' at the start or after a space (an INI comment)"
    return None


def render_ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    """Write ``sections`` as INI: ``[SECTION]`` and ``key = value`` lines, ``\\n`` endings.

    Raises ValueError for a name or value that configparser would not read back unchanged.
    """
    lines: list[str] = []
    for section, values in sections.items():
        if not _SECTION_NAME.fullmatch(section) or section == "DEFAULT":
            raise ValueError(f"cannot write INI section name {quote(section)}")
        lines.append(f"[{section}]")
        for key, value in values.items():
            if not _KEY_NAME.fullmatch(key):
                raise ValueError(f"cannot write INI key name {quote(key)} in [{section}]")
            problem = ini_value_problem(value)
            if problem is not None:
                raise ValueError(f"cannot write {section}.{key} = {quote(value)}: {problem}")
            lines.append(f"{key} = {value}" if value else f"{key} =")
    return "".join(f"{line}\n" for line in lines)
