"""One problem with a request, said so that the uploader knows what to fix.

Every validation (routing, the proxymod configs, the files) describes what is wrong as a
:class:`Problem`: *where* (the key, section or file), *what* is wrong, what was *expected*,
and for a misspelt name the nearest valid one::

    `proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?

Exceptions and records keep the text (``str(problem)``), one line each; a name that came from
an event and could break that line (a control character, a backtick, great length) is shown
quoted and shortened instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from .paths import forbidden_character, quote

#: How alike a name must be to a valid one to be offered as a correction (difflib's ratio).
SIMILARITY: float = 0.6


@dataclass(frozen=True)
class Problem:
    """What is wrong, where, what was expected, and the nearest valid name if there is one."""

    where: str
    what: str
    expected: str | None = None
    suggestion: str | None = None
    note: str | None = None  #: anything else that helps, e.g. a misspelling of it that is there

    def __str__(self) -> str:
        text = f"{shown(self.where)}: {self.what}" if self.where else self.what
        if self.expected:
            text += f" ({self.expected})"
        if self.suggestion:
            text += f"; did you mean {shown(self.suggestion)}?"
        if self.note:
            text += f"; {self.note}"
        return text


#: Longest name shown in backticks as it is.
_SHOWN_LIMIT = 200


def shown(name: str) -> str:
    """``name`` in backticks, or quoted and shortened when it could break the line."""
    if len(name) > _SHOWN_LIMIT or "`" in name or forbidden_character(name) is not None:
        return quote(name)
    return f"`{name}`"


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (a case-only difference first), or None if none is close.

    ``name`` itself is never offered.
    """
    choices = [candidate for candidate in dict.fromkeys(candidates) if candidate != name]
    folded = [candidate for candidate in choices if candidate.casefold() == name.casefold()]
    if folded:
        return folded[0]
    found = difflib.get_close_matches(name, choices, n=1, cutoff=SIMILARITY)
    if found:
        return found[0]
    lowered = {candidate.casefold(): candidate for candidate in choices}
    found = difflib.get_close_matches(name.casefold(), list(lowered), n=1, cutoff=SIMILARITY)
    return lowered[found[0]] if found else None


def texts(problems: Iterable[Problem | str]) -> list[str]:
    """The problems as the one-line texts exceptions and records keep."""
    return [str(problem) for problem in problems]
