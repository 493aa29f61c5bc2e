"""Where a setting's text comes from: the environment, then an INI file, read and checked."""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Mapping

from ..errors import SettingsError

#: Name of the environment variable that points at our optional INI file.
CONFIG_FILE_VARIABLE = "DISPATCHER_CONFIG"

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


class Source:
    """Looks a name up in the environment, then the config file."""

    def __init__(self, environ: Mapping[str, str], file_values: Mapping[str, str]) -> None:
        self.environ = environ
        self.file_values = file_values

    def raw(self, name: str) -> str | None:
        if name in self.environ:
            return self.environ[name]
        return self.file_values.get(name.lower())

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None or value == "" else value

    def optional(self, name: str) -> str | None:
        value = self.raw(name)
        return value if value else None

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        return int(self._bounded(name, default, minimum, int, "an integer"))

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        return float(self._bounded(name, default, minimum, float, "a number"))

    def _bounded(
        self,
        name: str,
        default: float,
        minimum: float,
        convert: Callable[[str], float],
        what: str,
    ) -> float:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        try:
            number = convert(value.strip())
        except ValueError:
            raise SettingsError(name, f"{value!r} is not {what}") from None
        if number < minimum:
            raise SettingsError(name, f"{number} is below the minimum {minimum}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        lowered = value.strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise SettingsError(name, f"{value!r} is not one of true/false/1/0/yes/no/on/off")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).strip().lower()
        if value not in choices:
            raise SettingsError(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def words(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(part.strip() for part in value.split(",") if part.strip())


def read_file(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise SettingsError(CONFIG_FILE_VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise SettingsError(CONFIG_FILE_VARIABLE, f"{path} is not valid INI: {exc}") from None
    if not parser.has_section("dispatcher"):
        return {}
    return {key.lower(): value for key, value in parser.items("dispatcher")}


def read_pacifica_cli_file(environ: Mapping[str, str]) -> dict[str, str]:
    """pacifica-cli's config file (``$HOME/.pacifica-cli/config.ini`` or ``CONFIG_FILE``)."""
    path = environ.get("PACIFICA_CLI_CONFIG") or environ.get("CONFIG_FILE")
    if not path:
        home = environ.get("HOME")
        path = os.path.join(home, ".pacifica-cli", "config.ini") if home else None
    if not path or not os.path.isfile(path):
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise SettingsError("PACIFICA_CLI_CONFIG", f"{path} is not valid INI: {exc}") from None
    values: dict[str, str] = {}
    for section in ("endpoints", "authentication"):
        if parser.has_section(section):
            prefix = "authentication_" if section == "authentication" else ""
            for key, value in parser.items(section):
                values[prefix + key.lower()] = value
    return values
