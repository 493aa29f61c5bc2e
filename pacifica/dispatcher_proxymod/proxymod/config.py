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
from collections.abc import Callable, Mapping
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
            problems.extend(_config_problems(f"proxymod.config_{self.number}", self.sections))
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
    if max_configs < 1:
        raise ValueError(f"max_configs must be at least 1, not {max_configs}")
    problems: list[str] = []
    count = _parse_count(key_values.get(COUNT_KEY), max_configs, problems)
    grouped: dict[int, dict[str, dict[str, object]]] = {}
    for key, value in key_values.items():
        parsed = _parse_key(key, problems)
        if parsed is not None:
            number, section, name = parsed
            grouped.setdefault(number, {}).setdefault(section, {})[name] = value

    limit = max_configs if count is None else count
    expected = range(1, count + 1) if count is not None else range(0)
    for number in sorted(set(grouped) | set(expected)):
        prefix = f"proxymod.config_{number}"
        if number not in grouped:
            problems.append(f"{prefix} is missing (configs_count is {count})")
        elif number > limit:
            if count is None:
                problems.append(f"{prefix} is above the limit of {max_configs} configs")
            else:
                problems.append(f"{prefix} is beyond configs_count {count}")
        else:
            problems.extend(_config_problems(prefix, grouped[number]))
    if problems:
        raise ConfigError(_capped(problems))
    return [_build(number, grouped[number]) for number in sorted(grouped)]


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


def _parse_count(value: object, max_configs: int, problems: list[str]) -> int | None:
    """Return configs_count, or None after recording why it is unusable."""
    if value is None:
        problems.append(f"{COUNT_KEY} is missing")
        return None
    where = f"{COUNT_KEY} = {quote(value)}"
    if not isinstance(value, str):
        problems.append(f"{where}: must be text, not {type(value).__name__}")
        return None
    if not _PLAIN_INTEGER.fullmatch(value):
        problems.append(
            f"{where}: not a positive integer (ASCII digits only: no sign, point, exponent, "
            "spaces or leading zeros)"
        )
        return None
    if len(value) > _MAX_NUMBER_DIGITS or int(value) > max_configs:
        problems.append(f"{where}: above the limit of {max_configs} configs")
        return None
    if value == "0":
        problems.append(f"{where}: must be at least 1")
        return None
    return int(value)


def _parse_key(key: object, problems: list[str]) -> tuple[int, str, str] | None:
    """Split ``proxymod.config_<N>.<SECTION>.<key>``; None for keys that are not one."""
    if not isinstance(key, str):
        problems.append(f"key {quote(key)}: must be text, not {type(key).__name__}")
        return None
    if not key.startswith(KEY_PREFIX):
        if key.casefold().startswith(KEY_PREFIX):
            problems.append(f"key {quote(key)}: write the prefix as {KEY_PREFIX!r} in lower case")
        return None
    if key == COUNT_KEY or key in IGNORED_KEYS:
        return None
    if not key.startswith(_CONFIG_KEY_PREFIX):
        problems.append(
            f"key {quote(key)}: unknown proxymod key (expected {COUNT_KEY} or "
            "proxymod.config_<N>.<SECTION>.<key>)"
        )
        return None
    parts = key[len(_CONFIG_KEY_PREFIX) :].split(".")
    digits = parts[0]
    if not _PLAIN_INTEGER.fullmatch(digits) or digits == "0":
        problems.append(
            f"key {quote(key)}: config number {quote(digits)} is not a positive integer "
            "without leading zeros"
        )
        return None
    if len(digits) > _MAX_NUMBER_DIGITS:
        problems.append(f"key {quote(key)}: config number is too large")
        return None
    if len(parts) != 3 or "" in parts:
        problems.append(
            f"key {quote(key)}: malformed (expected proxymod.config_<N>.<SECTION>.<key>, "
            f"with exactly three dots)"
        )
        return None
    return int(digits), parts[1], parts[2]


def _config_problems(prefix: str, sections: Mapping[str, object]) -> list[str]:
    """Every problem with one configuration's sections, keys and values."""
    problems: list[str] = []
    for section in sections:
        if section not in SCHEMA:
            problems.append(
                f"{prefix}: unknown section {quote(section)} (expected {', '.join(SCHEMA)})"
            )
    for section in REQUIRED_SECTIONS:
        if section not in sections:
            problems.append(f"{prefix} has no {section} section")
    for section, allowed in SCHEMA.items():
        values = sections.get(section)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            problems.append(f"{prefix}.{section} must be a mapping, not {type(values).__name__}")
            continue
        for key in values:
            if key not in allowed:
                problems.append(
                    f"{prefix}.{section}: unknown key {quote(key)} "
                    f"({section} takes {', '.join(allowed)})"
                )
        missing = [key for key in allowed if key not in values]
        if missing:
            problems.append(
                f"{prefix}.{section} lacks {', '.join(missing)} "
                f"({section} needs {', '.join(allowed)})"
            )
        for key in allowed:
            if key in values:
                problem = _value_problem(f"{prefix}.{section}.{key}", key, values[key])
                if problem is not None:
                    problems.append(problem)
    return problems


def _value_problem(where: str, key: str, value: object) -> str | None:
    """Check one value against the INI rules and its key's own rule."""
    problem = ini_value_problem(value)
    if problem is not None:
        return f"{where} = {quote(value)}: {problem}"
    assert isinstance(value, str)  # ini_value_problem rejects everything else
    if key == "runtime":
        problem = _runtime_problem(value)
    elif key == "failure":
        problem = None if value in ("0", "1") else "must be 0 or 1"
    elif key in ("in_dir", "out_dir"):
        problem = _path_problem(lambda: safe_relative_dir(value, where))
    else:
        problem = _path_problem(lambda: safe_file_name(value, where))
    return None if problem is None else f"{where} = {quote(value)}: {problem}"


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
    "ini_value_problem",
    "parse_configs",
    "render_ini",
]
