"""An event's ``proxymod.*`` key/values -> its configurations, or every problem with them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ...errors import ConfigError
from ...paths import quote
from ...problems import Problem, nearest, texts
from .configuration import ProxymodConfig
from .schema import (
    CONFIG_KEY_PREFIX,
    COUNT_KEY,
    IGNORED_KEYS,
    KEY_PREFIX,
    MAX_NUMBER_DIGITS,
    PLAIN_INTEGER,
)
from .sections import capped, missing, sections_problems

_CONFIG_FORM = "proxymod.config_<N>.<SECTION>.<key>"
_KNOWN_KEYS = (COUNT_KEY, *sorted(IGNORED_KEYS))
_NUMBERED = re.compile(r"([A-Za-z_]*?)_?([0-9]+)")


def parse_configs(key_values: Mapping[str, str], max_configs: int) -> list[ProxymodConfig]:
    """Build the event's configurations, ``config_1`` .. ``config_<configs_count>`` in order.

    Keys outside ``proxymod.*`` are ignored, as are ``proxymod.task`` and ``proxymod.version``.
    Raises ConfigError listing every problem found (at most MAX_PROBLEMS, then a count).
    """
    grouped, problems = _grouped(key_values, max_configs)
    if problems:
        raise ConfigError(capped(texts(problems)))
    return [_build(number, grouped[number]) for number in sorted(grouped)]


def config_problems(key_values: Mapping[str, str], max_configs: int) -> list[Problem]:
    """Every problem :func:`parse_configs` would report, as :class:`Problem` s (uncapped)."""
    return _grouped(key_values, max_configs)[1]


def _grouped(
    key_values: Mapping[str, str], max_configs: int
) -> tuple[dict[int, dict[str, dict[str, object]]], list[Problem]]:
    """The configs' values by number and section, and every problem with them."""
    if max_configs < 1:
        raise ValueError(f"max_configs must be at least 1, not {max_configs}")
    problems: list[Problem] = []
    #: full name a misspelt key or section probably meant -> the name given
    given_for: dict[str, str] = {}
    count = _parse_count(key_values.get(COUNT_KEY), max_configs, problems)
    grouped: dict[int, dict[str, dict[str, object]]] = {}
    for key, value in key_values.items():
        parsed = _parse_key(key, problems, given_for)
        if parsed is not None:
            number, section, name = parsed
            grouped.setdefault(number, {}).setdefault(section, {})[name] = value
    if count is None and COUNT_KEY in given_for:
        problems = [p for p in problems if p.where != COUNT_KEY]
        what = f"the number of configs, 1 to {max_configs}"
        problems.insert(0, missing(COUNT_KEY, given_for, what))

    limit = max_configs if count is None else count
    expected = range(1, count + 1) if count is not None else range(0)
    for number in sorted(set(grouped) | set(expected)):
        prefix = f"proxymod.config_{number}"
        if number not in grouped:
            problems.append(
                missing(prefix, given_for, f"{COUNT_KEY} is {count}: configs 1 to {count}")
            )
        elif number > limit:
            if count is None:
                problems.append(Problem(prefix, f"above the limit of {max_configs} configs"))
            else:
                problems.append(
                    Problem(prefix, f"beyond {COUNT_KEY} {count}", f"raise {COUNT_KEY} to use it")
                )
        else:
            problems.extend(sections_problems(prefix, grouped[number], given_for))
    return grouped, problems


def _build(number: int, sections: Mapping[str, Mapping[str, object]]) -> ProxymodConfig:
    """Make a config from already validated, therefore all-text, sections."""
    text_sections = {
        section: {key: str(value) for key, value in values.items()}
        for section, values in sections.items()
    }
    return ProxymodConfig(number, text_sections)


def _parse_count(value: object, max_configs: int, problems: list[Problem]) -> int | None:
    """Return configs_count, or None after recording why it is unusable."""
    expected = f"the number of configs, 1 to {max_configs}"
    if value is None:
        problems.append(Problem(COUNT_KEY, "missing", expected))
        return None
    if not isinstance(value, str):
        problems.append(Problem(COUNT_KEY, f"must be text, not {type(value).__name__}"))
        return None
    given = f"given {quote(value)}"
    if not PLAIN_INTEGER.fullmatch(value):
        problems.append(
            Problem(
                COUNT_KEY,
                "not a positive integer (ASCII digits only: no sign, point, exponent, "
                "spaces or leading zeros)",
                given,
            )
        )
        return None
    if len(value) > MAX_NUMBER_DIGITS or int(value) > max_configs:
        problems.append(Problem(COUNT_KEY, f"above the limit of {max_configs} configs", given))
        return None
    if value == "0":
        problems.append(Problem(COUNT_KEY, "must be at least 1", given))
        return None
    return int(value)


def _parse_key(
    key: object, problems: list[Problem], given_for: dict[str, str]
) -> tuple[int, str, str] | None:
    """Split ``proxymod.config_<N>.<SECTION>.<key>``; None for keys that are not one."""
    if not isinstance(key, str):
        problems.append(Problem(quote(key), f"a key must be text, not {type(key).__name__}"))
        return None
    if not key.startswith(KEY_PREFIX):
        if key.casefold().startswith(KEY_PREFIX):
            lowered = KEY_PREFIX + key[len(KEY_PREFIX) :]
            problems.append(Problem(key, "write the prefix in lower case", suggestion=lowered))
            given_for.setdefault(lowered, key)
        return None
    if key == COUNT_KEY or key in IGNORED_KEYS:
        return None
    parts = key[len(CONFIG_KEY_PREFIX) :].split(".")
    digits = parts[0]
    if not key.startswith(CONFIG_KEY_PREFIX) or (len(parts) == 1 and not digits.isdigit()):
        problems.append(_unknown_key(key, given_for))  # proxymod.confg_1..., config_count...
        return None
    if not PLAIN_INTEGER.fullmatch(digits) or digits == "0":
        problems.append(
            Problem(
                key,
                f"config number {quote(digits)} is not a positive integer without leading zeros",
                _CONFIG_FORM,
            )
        )
        return None
    if len(digits) > MAX_NUMBER_DIGITS:
        problems.append(Problem(key, "config number is too large"))
        return None
    if len(parts) != 3 or "" in parts:
        problems.append(
            Problem(key, "malformed", f"expected {_CONFIG_FORM}, with exactly three dots")
        )
        return None
    return int(digits), parts[1], parts[2]


def _unknown_key(key: str, given_for: dict[str, str]) -> Problem:
    """A ``proxymod.`` key we do not know, with the valid key it probably meant."""
    fixed = _corrected_key(key)
    if fixed is None:
        expected = f"expected {', '.join(_KNOWN_KEYS)} or {_CONFIG_FORM}"
        return Problem(key, "unknown proxymod key", expected)
    given_for.setdefault(fixed, key)
    if fixed.count(".") == 3:  # the config it belongs to, should that config be missing
        given_for.setdefault(fixed.rsplit(".", 2)[0], key)
    return Problem(key, "unknown proxymod key", suggestion=fixed)


def _corrected_key(key: str) -> str | None:
    """The valid key ``key`` (a ``proxymod.`` key we do not know) probably meant, or None."""
    rest = key[len(KEY_PREFIX) :]
    head, dot, tail = rest.partition(".")
    numbered = _NUMBERED.fullmatch(head)
    if dot and numbered and nearest(numbered.group(1), ["config"]):
        return f"{CONFIG_KEY_PREFIX}{int(numbered.group(2))}.{tail}"
    fixed = nearest(rest, [known[len(KEY_PREFIX) :] for known in _KNOWN_KEYS])
    return KEY_PREFIX + fixed if fixed else None
