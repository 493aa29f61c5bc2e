"""proxymod key/values from an event -> validated :class:`ProxymodConfig` s -> INI text.

An upload describes its configurations as TransactionKeyValue pairs::

    proxymod.configs_count              = 2
    proxymod.config_1.PROJECT.runtime   = 2
    proxymod.config_1.PROJECT.failure   = 0
    proxymod.config_1.INPUTS.in_dir     = inputs
    proxymod.config_1.INPUTS.in_file_one = in_file_one.csv
    proxymod.config_1.INPUTS.in_file_two = in_file_two.csv
    proxymod.config_1.OUTPUTS.out_dir   = outputs
    proxymod.config_2.PROJECT.runtime   = ...

:func:`parse_configs` checks all of them and raises one :class:`~..errors.ConfigError` listing
every problem. Nothing is ever evaluated: numbers are parsed from ASCII digits only.

Values must also survive being written to an INI file unchanged (:func:`ini_value_problem`):
no control characters or line breaks (they would add lines, keys or sections), no leading or
trailing whitespace (readers strip it), no ``%`` (configparser's interpolation), no leading
``[`` (a section header to a lenient reader) and no ``#`` or ``;`` at the start or after
whitespace (an inline comment to readers that allow them, as proxymod's documented format does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from ..errors import ConfigError
from ..paths import (
    PathError,
    forbidden_character,
    quote,
    safe_file_name,
    safe_relative_dir,
)
from ..problems import Problem, nearest, shown, texts

#: Every key this module reads starts with this.
KEY_PREFIX = "proxymod."

#: The key that says how many configurations the event carries.
COUNT_KEY = "proxymod.configs_count"

#: proxymod keys that are routing's business, not ours.
IGNORED_KEYS = frozenset({"proxymod.task", "proxymod.version"})

#: The sections and keys a configuration may have, in the order they are written.
SCHEMA: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "PROJECT": ("runtime", "failure"),
        "INPUTS": ("in_dir", "in_file_one", "in_file_two"),
        "OUTPUTS": ("out_dir",),
    }
)

#: Sections every configuration needs (INPUTS is optional: models may pass inputs directly).
REQUIRED_SECTIONS = ("PROJECT", "OUTPUTS")

#: Longest accepted ``runtime``: a model that must sleep more than a day is a mistake.
MAX_RUNTIME_SECONDS = 86_400

#: Longest value written to an INI file, in characters.
MAX_VALUE_CHARS = 4096

#: At most this many problems are listed; the rest are counted.
MAX_PROBLEMS = 50

_CONFIG_KEY_PREFIX = "proxymod.config_"
_PLAIN_INTEGER = re.compile(r"0|[1-9][0-9]*")
_SECTION_NAME = re.compile(r"[A-Za-z0-9_]+")
_KEY_NAME = re.compile(r"[a-z0-9_]+")
_COMMENT_AFTER_SPACE = re.compile(r"\s[#;]")
# Longest digit string turned into an int (well below Python's int/str conversion limit).
_MAX_NUMBER_DIGITS = 9


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


@dataclass(frozen=True)
class ProxymodConfig:
    """One validated proxymod configuration, ``config_<number>`` of its event.

    ``sections`` holds the values exactly as the event gave them, in the canonical order of
    :data:`SCHEMA`; construction validates them and raises ConfigError if they are invalid.
    """

    number: int
    sections: Mapping[str, Mapping[str, str]]

    def __post_init__(self) -> None:
        problems: list[str] = []
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 1:
            problems.append(f"config number {quote(self.number)} is not a positive integer")
        if not isinstance(self.sections, Mapping):
            problems.append(
                f"config sections must be a mapping, not {type(self.sections).__name__}"
            )
        else:
            found = _config_problems(f"proxymod.config_{self.number}", self.sections)
            problems.extend(texts(found))
        if problems:
            raise ConfigError(_capped(problems))
        canonical = {
            section: MappingProxyType({key: self.sections[section][key] for key in keys})
            for section, keys in SCHEMA.items()
            if section in self.sections
        }
        object.__setattr__(self, "sections", MappingProxyType(canonical))

    @property
    def name(self) -> str:
        """``config_<number>``, the stem of this configuration's INI file."""
        return f"config_{self.number}"

    @property
    def runtime(self) -> int:
        """Seconds the model sleeps (0 .. MAX_RUNTIME_SECONDS)."""
        return int(self.sections["PROJECT"]["runtime"])

    @property
    def failure(self) -> int:
        """1 if the model must fail on purpose, else 0."""
        return int(self.sections["PROJECT"]["failure"])

    @property
    def in_dir(self) -> PurePosixPath | None:
        """The inputs' directory relative to the upload, or None without an INPUTS section."""
        inputs = self.sections.get("INPUTS")
        return None if inputs is None else safe_relative_dir(inputs["in_dir"], "in_dir")

    @property
    def in_file_one(self) -> str | None:
        """The first input file's name, or None without an INPUTS section."""
        inputs = self.sections.get("INPUTS")
        return None if inputs is None else inputs["in_file_one"]

    @property
    def in_file_two(self) -> str | None:
        """The second input file's name, or None without an INPUTS section."""
        inputs = self.sections.get("INPUTS")
        return None if inputs is None else inputs["in_file_two"]

    @property
    def out_dir(self) -> PurePosixPath:
        """Where the model writes, relative to the outputs directory."""
        return safe_relative_dir(self.sections["OUTPUTS"]["out_dir"], "out_dir")

    def ini_text(self) -> str:
        """The INI file with the values as the event gave them."""
        return render_ini(self.sections)

    def absolute_ini_text(self, inputs_dir: Path, outputs_dir: Path) -> str:
        """The INI a model reads: ``in_dir`` = ``inputs_dir``, ``out_dir`` under ``outputs_dir``.

        Both directories must be absolute. Raises ValueError if either is relative or if its
        path cannot be written to an INI file unchanged.
        """
        for label, directory in (("inputs_dir", inputs_dir), ("outputs_dir", outputs_dir)):
            if not directory.is_absolute():
                raise ValueError(f"{label} must be absolute, not {str(directory)!r}")
        sections = {section: dict(values) for section, values in self.sections.items()}
        if "INPUTS" in sections:
            sections["INPUTS"]["in_dir"] = str(inputs_dir)
        sections["OUTPUTS"]["out_dir"] = str(outputs_dir / self.out_dir)
        return render_ini(sections)


def parse_configs(key_values: Mapping[str, str], max_configs: int) -> list[ProxymodConfig]:
    """Build the event's configurations, ``config_1`` .. ``config_<configs_count>`` in order.

    Keys outside ``proxymod.*`` are ignored, as are ``proxymod.task`` and ``proxymod.version``.
    Raises ConfigError listing every problem found (at most MAX_PROBLEMS, then a count).
    """
    grouped, problems = _grouped(key_values, max_configs)
    if problems:
        raise ConfigError(_capped(texts(problems)))
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
        problems.insert(0, _missing(COUNT_KEY, given_for, what))

    limit = max_configs if count is None else count
    expected = range(1, count + 1) if count is not None else range(0)
    for number in sorted(set(grouped) | set(expected)):
        prefix = f"proxymod.config_{number}"
        if number not in grouped:
            problems.append(
                _missing(prefix, given_for, f"{COUNT_KEY} is {count}: configs 1 to {count}")
            )
        elif number > limit:
            if count is None:
                problems.append(Problem(prefix, f"above the limit of {max_configs} configs"))
            else:
                problems.append(
                    Problem(prefix, f"beyond {COUNT_KEY} {count}", f"raise {COUNT_KEY} to use it")
                )
        else:
            problems.extend(_config_problems(prefix, grouped[number], given_for))
    return grouped, problems


def _build(number: int, sections: Mapping[str, Mapping[str, object]]) -> ProxymodConfig:
    """Make a config from already validated, therefore all-text, sections."""
    text_sections = {
        section: {key: str(value) for key, value in values.items()}
        for section, values in sections.items()
    }
    return ProxymodConfig(number, text_sections)


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]


def _missing(where: str, given_for: Mapping[str, str], expected: str) -> Problem:
    """``where`` is missing; say so, and name the misspelling of it that was given, if any."""
    typo = given_for.get(where)
    note = None if typo is None else f"{shown(typo)} is given: is it misspelt?"
    return Problem(where, "missing", expected, note=note)


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
    if not _PLAIN_INTEGER.fullmatch(value):
        problems.append(
            Problem(
                COUNT_KEY,
                "not a positive integer (ASCII digits only: no sign, point, exponent, "
                "spaces or leading zeros)",
                given,
            )
        )
        return None
    if len(value) > _MAX_NUMBER_DIGITS or int(value) > max_configs:
        problems.append(Problem(COUNT_KEY, f"above the limit of {max_configs} configs", given))
        return None
    if value == "0":
        problems.append(Problem(COUNT_KEY, "must be at least 1", given))
        return None
    return int(value)


_CONFIG_FORM = "proxymod.config_<N>.<SECTION>.<key>"
_KNOWN_KEYS = (COUNT_KEY, *sorted(IGNORED_KEYS))
_NUMBERED = re.compile(r"([A-Za-z_]*?)_?([0-9]+)")


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
    parts = key[len(_CONFIG_KEY_PREFIX) :].split(".")
    digits = parts[0]
    if not key.startswith(_CONFIG_KEY_PREFIX) or (len(parts) == 1 and not digits.isdigit()):
        problems.append(_unknown_key(key, given_for))  # proxymod.confg_1..., config_count...
        return None
    if not _PLAIN_INTEGER.fullmatch(digits) or digits == "0":
        problems.append(
            Problem(
                key,
                f"config number {quote(digits)} is not a positive integer without leading zeros",
                _CONFIG_FORM,
            )
        )
        return None
    if len(digits) > _MAX_NUMBER_DIGITS:
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
        return f"{_CONFIG_KEY_PREFIX}{int(numbered.group(2))}.{tail}"
    fixed = nearest(rest, [known[len(KEY_PREFIX) :] for known in _KNOWN_KEYS])
    return KEY_PREFIX + fixed if fixed else None


def _config_problems(
    prefix: str, sections: Mapping[str, object], given_for: dict[str, str] | None = None
) -> list[Problem]:
    """Every problem with one configuration's sections, keys and values."""
    given_for = {} if given_for is None else given_for
    problems: list[Problem] = []
    for section in sections:
        if section not in SCHEMA:
            expected = f"sections are {', '.join(SCHEMA)}"
            problems.append(
                _unknown(prefix, section, "section", SCHEMA, sections, expected, given_for)
            )
    for section in REQUIRED_SECTIONS:
        if section not in sections:
            needs = f"{section} needs {', '.join(SCHEMA[section])}"
            problems.append(_missing(f"{prefix}.{section}", given_for, needs))
    for section, allowed in SCHEMA.items():
        values = sections.get(section)
        if values is None:
            continue
        where = f"{prefix}.{section}"
        if not isinstance(values, Mapping):
            problems.append(Problem(where, f"must be a mapping, not {type(values).__name__}"))
            continue
        for key in values:
            if key not in allowed:
                expected = f"{section} takes {', '.join(allowed)}"
                problems.append(_unknown(where, key, "key", allowed, values, expected, given_for))
        for key in allowed:
            if key not in values:
                needs = f"{section} needs {', '.join(allowed)}"
                problems.append(_missing(f"{where}.{key}", given_for, needs))
        for key in allowed:
            if key in values:
                problem = _value_problem(f"{where}.{key}", key, values[key])
                if problem is not None:
                    problems.append(problem)
    return problems


def _unknown(
    where: str,
    name: str,
    kind: str,
    valid: Iterable[str],
    given: Iterable[object],
    expected: str,
    given_for: dict[str, str],
) -> Problem:
    """``name`` (a section or key) is not valid at ``where``; offer the nearest missing one."""
    fixed = nearest(name, [valid_name for valid_name in valid if valid_name not in given])
    if fixed is None:
        return Problem(f"{where}.{name}", f"unknown {kind}", expected)
    given_for.setdefault(f"{where}.{fixed}", f"{where}.{name}")
    return Problem(f"{where}.{name}", f"unknown {kind}", suggestion=fixed)


def _value_problem(where: str, key: str, value: object) -> Problem | None:
    """Check one value against the INI rules and its key's own rule."""
    problem = ini_value_problem(value)
    if problem is None:
        assert isinstance(value, str)  # ini_value_problem rejects everything else
        if key == "runtime":
            problem = _runtime_problem(value)
        elif key == "failure":
            problem = None if value in ("0", "1") else "must be 0 or 1"
        elif key in ("in_dir", "out_dir"):
            problem = _path_problem(lambda: safe_relative_dir(value, where))
        else:
            problem = _path_problem(lambda: safe_file_name(value, where))
    return None if problem is None else Problem(where, problem, f"given {quote(value)}")


def _runtime_problem(value: str) -> str | None:
    if _PLAIN_INTEGER.fullmatch(value):
        if len(value) > _MAX_NUMBER_DIGITS or int(value) > MAX_RUNTIME_SECONDS:
            return f"above the maximum of {MAX_RUNTIME_SECONDS} seconds"
        return None
    if value.startswith("-") and _PLAIN_INTEGER.fullmatch(value[1:]):
        return "is negative (runtime is a number of seconds >= 0)"
    return (
        "not a whole number of seconds (ASCII digits only: no sign, point, exponent, "
        "spaces or leading zeros)"
    )


def _path_problem(check: Callable[[], object]) -> str | None:
    try:
        check()
    except PathError as error:
        return error.reason
    return None


__all__ = [
    "COUNT_KEY",
    "MAX_RUNTIME_SECONDS",
    "ProxymodConfig",
    "config_problems",
    "ini_value_problem",
    "parse_configs",
    "render_ini",
]
