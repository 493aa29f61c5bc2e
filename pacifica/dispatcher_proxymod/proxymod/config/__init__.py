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

:func:`parse_configs` checks all of them and raises one :class:`~...errors.ConfigError` listing
every problem. Nothing is ever evaluated: numbers are parsed from ASCII digits only.

Values must also survive being written to an INI file unchanged (:func:`ini_value_problem`):
no control characters or line breaks (they would add lines, keys or sections), no leading or
trailing whitespace (readers strip it), no ``%`` (configparser's interpolation), no leading
``[`` (a section header to a lenient reader) and no ``#`` or ``;`` at the start or after
whitespace (an inline comment to readers that allow them, as proxymod's documented format does).

``schema`` holds the keys, sections and limits, ``keys`` reads an event's key/values
(:func:`parse_configs`, :func:`config_problems`), ``sections`` checks one configuration,
``configuration`` is the validated :class:`ProxymodConfig`, ``ini`` writes INI text.
"""

from .configuration import ProxymodConfig
from .ini import ini_value_problem, render_ini
from .keys import config_problems, parse_configs
from .schema import (
    COUNT_KEY,
    IGNORED_KEYS,
    KEY_PREFIX,
    MAX_PROBLEMS,
    MAX_RUNTIME_SECONDS,
    MAX_VALUE_CHARS,
    REQUIRED_SECTIONS,
    SCHEMA,
)

__all__ = [
    "COUNT_KEY",
    "IGNORED_KEYS",
    "KEY_PREFIX",
    "MAX_PROBLEMS",
    "MAX_RUNTIME_SECONDS",
    "MAX_VALUE_CHARS",
    "REQUIRED_SECTIONS",
    "SCHEMA",
    "ProxymodConfig",
    "config_problems",
    "ini_value_problem",
    "parse_configs",
    "render_ini",
]
