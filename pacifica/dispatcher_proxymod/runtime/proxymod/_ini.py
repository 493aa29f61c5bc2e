"""Reading proxymod's INI files the way the original reads them (with the ``configobj`` library).

What a model can see of it, all reproduced here with the standard library only:

- ``[NAME]`` starts a section (``[[NAME]]`` a subsection); names and keys are case-sensitive and may
  be quoted; a key or a section given twice is an error.
- ``key = value``: whitespace around both is dropped; ``#`` starts a comment anywhere outside
  quotes; one pair of quotes around a value is removed; a triple-quoted value may span lines.
- A value with an unquoted comma is a *list* (``a, b`` -> ``['a', 'b']``, ``a,`` -> ``['a']``,
  ``,`` -> ``[]``); an empty value is ``''``.
- ``%(name)s`` in a value is replaced, when the value is read, by the key ``name`` of the same
  section, of its ``DEFAULT`` subsection, or of an enclosing section.
- ``;`` is not a comment, and lines are never continued: both are errors or new keys.

Errors raise :class:`IniError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: A section line: indentation, ``[`` s, the name, as many ``]`` s, an optional comment.
_SECTION_LINE = re.compile(
    r"""^\s*(?P<open>(?:\[\s*)+)
    (?P<name>"\s*\S.*?\s*"|'\s*\S.*?\s*'|[^'"\s].*?)
    (?P<close>(?:\s*\])+)\s*(?:\#.*)?$""",
    re.VERBOSE,
)
#: A ``key = value`` line; the key ends at the first ``=`` outside quotes.
_KEY_LINE = re.compile(r"""^\s*(?P<key>".*?"|'.*?'|[^'"=].*?)\s*=\s*(?P<value>.*)$""")
#: An unquoted list item or value: up to the next comma or comment.
_UNQUOTED = re.compile(r"[^,#]*")
_INTERPOLATION = re.compile(r"%\(([^)]*)\)s")

Value = str | list[str]


class IniError(ValueError):
    """The INI file cannot be read as proxymod reads it; the message names the file and line."""


@dataclass(eq=False)
class Section:
    """One section: its values (text or list of texts) and subsections, in file order."""

    name: str
    parent: Section | None = None
    entries: dict[str, Value | Section] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """0 for the file itself, 1 for ``[X]``, 2 for ``[[X]]``..."""
        return 0 if self.parent is None else self.parent.depth + 1

    def section(self, name: str) -> Section | None:
        """The subsection ``name``, or None when there is none (or ``name`` is a value)."""
        entry = self.entries.get(name)
        return entry if isinstance(entry, Section) else None

    def value(self, key: str) -> Value | None:
        """The value of ``key`` with ``%(name)s`` replaced, or None when there is no such value."""
        entry = self.entries.get(key)
        if entry is None or isinstance(entry, Section):
            return None
        if isinstance(entry, list):
            return [self._interpolate(key, item, set()) for item in entry]
        return self._interpolate(key, entry, set())

    def _interpolate(self, key: str, text: str, seen: set[tuple[str, int]]) -> str:
        if "%" not in text:
            return text
        if (key, id(self)) in seen:
            raise IniError(f"[{self.name}] {key}: %({key})s refers to itself through other keys")
        seen = seen | {(key, id(self))}
        parts: list[str] = []
        position = 0
        for match in _INTERPOLATION.finditer(text):
            found, owner = self._find(match.group(1))
            parts.append(text[position : match.start()])
            parts.append(owner._interpolate(match.group(1), found, seen))
            position = match.end()
        return "".join(parts) + text[position:]

    def _find(self, key: str) -> tuple[str, Section]:
        """The raw text of ``key`` to interpolate: here, in DEFAULT, then in enclosing sections."""
        current: Section | None = self
        while current is not None:
            for owner in (current, current.section("DEFAULT")):
                entry = None if owner is None else owner.entries.get(key)
                if isinstance(entry, str) and owner is not None:
                    return entry, owner
            current = current.parent
        raise IniError(f"[{self.name}]: %({key})s names no key {key!r} (nor in DEFAULT)")


def read_ini(path: str) -> Section:
    """Parse the INI file at ``path`` (UTF-8, an optional BOM) into its root :class:`Section`."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IniError(f"{path}: not UTF-8 text ({exc})") from None
    return parse_ini(text, path)


def parse_ini(text: str, where: str = "<ini>") -> Section:
    """Parse INI ``text``; ``where`` names it in errors."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    root = Section(name="")
    current = root
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        index += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        section_match = _SECTION_LINE.match(line)
        if section_match:
            current = _open_section(root, current, section_match, f"{where}, line {number}")
            continue
        key_match = _KEY_LINE.match(line)
        if key_match is None:
            raise IniError(
                f"{where}, line {number}: {stripped!r} is neither [section] nor key = value"
            )
        key = _unquote(key_match["key"])
        raw = key_match["value"]
        value: Value
        if raw[:3] in ("'''", '"""'):
            value, index = _triple_quoted(raw, lines, index, f"{where}, line {number}")
        else:
            value = parse_value(raw, f"{where}, line {number}")
        if key in current.entries:
            raise IniError(
                f"{where}, line {number}: the key {key!r} is given twice in [{current.name}]"
            )
        current.entries[key] = value
    return root


def _open_section(root: Section, current: Section, match: re.Match[str], where: str) -> Section:
    depth = match["open"].count("[")
    if depth != match["close"].count("]"):
        raise IniError(f"{where}: unbalanced brackets in a section header")
    if depth > current.depth + 1:
        raise IniError(f"{where}: section nested more than one level below its parent")
    parent = current
    while parent.depth >= depth and parent.parent is not None:
        parent = parent.parent
    name = _unquote(match["name"])
    if name in parent.entries:
        raise IniError(f"{where}: the section [{name}] is given twice")
    section = Section(name=name, parent=parent)
    parent.entries[name] = section
    return section


def _unquote(text: str) -> str:
    """Remove one pair of matching quotes around ``text``."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_value(raw: str, where: str = "<value>") -> Value:
    """One value as written after ``=``: a text, or a list when it holds an unquoted comma."""
    if raw.split("#", 1)[0].strip() == ",":
        return []  # a lone comma: the empty list
    items: list[str] = []
    is_list = False
    position = 0
    end = len(raw)
    while True:
        while position < end and raw[position].isspace():
            position += 1
        if position == end or raw[position] == "#":
            break
        if raw[position] in "'\"":
            closing = raw.find(raw[position], position + 1)
            if closing < 0:
                raise IniError(f"{where}: a quote is opened and never closed in {raw!r}")
            items.append(raw[position + 1 : closing])
            position = closing + 1
        else:
            match = _UNQUOTED.match(raw, position)
            item = match.group().rstrip() if match else ""
            if not item:
                raise IniError(f"{where}: an empty item in the list {raw!r}")
            items.append(item)
            position = match.end() if match else position
        while position < end and raw[position].isspace():
            position += 1
        if position < end and raw[position] == ",":
            is_list = True
            position += 1
            continue
        if position < end and raw[position] != "#":
            raise IniError(f"{where}: unexpected text after a quoted value in {raw!r}")
        break
    if is_list:
        return items
    return items[0] if items else ""


def _triple_quoted(raw: str, lines: list[str], index: int, where: str) -> tuple[str, int]:
    """A triple-quoted value, maybe over several lines; returns it and the next line's index."""
    quote = raw[:3]
    rest = raw[3:]
    closing = rest.find(quote)
    if closing >= 0:
        _only_comment_after(rest[closing + 3 :], where)
        return rest[:closing], index
    parts = [rest]
    while index < len(lines):
        line = lines[index]
        index += 1
        closing = line.find(quote)
        if closing >= 0:
            _only_comment_after(line[closing + 3 :], where)
            parts.append(line[:closing])
            return "\n".join(parts), index
        parts.append(line)
    raise IniError(f"{where}: the {quote} value is never closed")


def _only_comment_after(text: str, where: str) -> None:
    stripped = text.strip()
    if stripped and not stripped.startswith("#"):
        raise IniError(f"{where}: unexpected text after a triple-quoted value: {stripped!r}")
