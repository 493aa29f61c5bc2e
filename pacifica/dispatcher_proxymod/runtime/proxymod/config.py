"""Reading and checking one proxymod configuration file (INI).

The file has a ``[PROJECT]`` section (``runtime``: seconds to sleep, a whole number >= 0;
``failure``: 0 or 1), an optional ``[INPUTS]`` section (``in_dir``, ``in_file_one``,
``in_file_two``) and an ``[OUTPUTS]`` section (``out_dir``). ``#`` and ``;`` start comments.
Nothing in it is ever evaluated: numbers are matched against ``[0-9]+`` and converted with ``int``.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass

# A whole number written with ASCII digits only: no sign, no underscores, no decimal point.
_WHOLE_NUMBER = re.compile(r"[0-9]+")

# configparser treats its "default section" specially; proxymod files have none, so pick a name
# no INI file can contain (a section header cannot hold a newline).
_NO_DEFAULT_SECTION = "\n"


class ConfigError(ValueError):
    """A proxymod configuration is invalid; the message names the file, section and key."""


class MissingPathError(ConfigError, FileNotFoundError):
    """The configuration file, or an input directory or file it names, does not exist."""


@dataclass(frozen=True)
class ProxConfig:
    """The checked contents of one configuration file, for one model.

    ``in_file_one``/``in_file_two`` are the full paths of the input CSVs read from ``[INPUTS]``, or
    None when the caller passes that input in itself. ``out_dir`` is the model's own output
    directory, ``<[OUTPUTS] out_dir>/<model_name>_outputs``.
    """

    path: str
    model_name: str
    runtime: int
    failure: int
    in_dir: str | None
    in_file_one: str | None
    in_file_two: str | None
    out_dir: str


class _CaseSensitiveParser(configparser.ConfigParser):
    """A ConfigParser that keeps key names as written (proxymod's keys are case-sensitive)."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def read_config(
    path: str | os.PathLike[str],
    model_name: str,
    *,
    reads_input_one: bool = True,
    reads_input_two: bool = True,
) -> ProxConfig:
    """Read and check the configuration file at ``path`` for the model ``model_name``.

    ``reads_input_one``/``reads_input_two`` say whether that input comes from ``[INPUTS]`` (True)
    or is passed in by the caller (False); ``[INPUTS]`` may be left out only when both are passed
    in. Creates nothing. Raises :class:`ConfigError` (a ValueError) for anything invalid and
    :class:`MissingPathError` (also a FileNotFoundError) for a missing file or directory.
    """
    ini = os.fspath(path)
    sections = _parse(ini)

    project = _section(sections, ini, "PROJECT")
    runtime = _whole_number(ini, project, "runtime", maximum=None)
    failure = _whole_number(ini, project, "failure", maximum=1)

    inputs = sections.get("INPUTS")
    in_dir: str | None = None
    if inputs is None and (reads_input_one or reads_input_two):
        raise ConfigError(
            f"{ini}: missing section [INPUTS]; it is required unless both inputs "
            "(in_one and in_two) are passed to the model"
        )
    if inputs is not None:
        in_dir = _value(ini, inputs, "INPUTS", "in_dir")
        if not os.path.isdir(in_dir):
            raise MissingPathError(f"{ini}: [INPUTS] in_dir: directory does not exist: {in_dir}")
    in_file_one = _input_file(ini, inputs, in_dir, "in_file_one") if reads_input_one else None
    in_file_two = _input_file(ini, inputs, in_dir, "in_file_two") if reads_input_two else None

    outputs = _section(sections, ini, "OUTPUTS")
    out_root = _value(ini, outputs, "OUTPUTS", "out_dir")

    return ProxConfig(
        path=ini,
        model_name=model_name,
        runtime=runtime,
        failure=failure,
        in_dir=in_dir,
        in_file_one=in_file_one,
        in_file_two=in_file_two,
        out_dir=os.path.join(out_root, f"{model_name}_outputs"),
    )


def _parse(ini: str) -> dict[str, dict[str, str]]:
    """Parse the INI file into ``{section: {key: value}}`` with quotes around values removed."""
    if not os.path.isfile(ini):
        raise MissingPathError(f"configuration file does not exist: {ini}")
    parser = _CaseSensitiveParser(
        interpolation=None,
        comment_prefixes=("#", ";"),
        inline_comment_prefixes=("#",),
        default_section=_NO_DEFAULT_SECTION,
        strict=True,
    )
    try:
        with open(ini, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{ini}: not a valid INI file: {exc}") from exc
    return {
        name: {key: _unquote(value) for key, value in parser.items(name)}
        for name in parser.sections()
    }


def _unquote(value: str) -> str:
    """Remove one pair of matching quotes around a value, as proxymod's INI reader does."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _section(sections: dict[str, dict[str, str]], ini: str, name: str) -> dict[str, str]:
    try:
        return sections[name]
    except KeyError:
        raise ConfigError(f"{ini}: missing section [{name}]") from None


def _value(ini: str, section: dict[str, str], section_name: str, key: str) -> str:
    value = section.get(key)
    if value is None:
        raise ConfigError(f"{ini}: [{section_name}] is missing the key {key!r}")
    if not value:
        raise ConfigError(f"{ini}: [{section_name}] {key} is empty")
    return value


def _whole_number(ini: str, project: dict[str, str], key: str, maximum: int | None) -> int:
    """Read ``[PROJECT] key`` as a whole number from 0 to ``maximum`` (no upper limit if None)."""
    text = _value(ini, project, "PROJECT", key).strip()
    allowed = "a whole number >= 0" if maximum is None else f"a whole number from 0 to {maximum}"
    if not _WHOLE_NUMBER.fullmatch(text):
        raise ConfigError(f"{ini}: [PROJECT] {key} must be {allowed}, got {text!r}")
    number = int(text)
    if maximum is not None and number > maximum:
        raise ConfigError(f"{ini}: [PROJECT] {key} must be {allowed}, got {text!r}")
    return number


def _input_file(ini: str, inputs: dict[str, str] | None, in_dir: str | None, key: str) -> str:
    """The full path of the input CSV ``[INPUTS] key``, which must exist."""
    if inputs is None or in_dir is None:
        raise ConfigError(f"{ini}: missing section [INPUTS], needed for {key}")
    path = os.path.join(in_dir, _value(ini, inputs, "INPUTS", key))
    if not os.path.isfile(path):
        raise MissingPathError(f"{ini}: [INPUTS] {key}: file does not exist: {path}")
    return path
