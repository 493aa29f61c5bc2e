"""What a proxymod configuration may hold: its keys, sections and limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

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
CONFIG_KEY_PREFIX = "proxymod.config_"
PLAIN_INTEGER = re.compile(r"0|[1-9][0-9]*")
# Longest digit string turned into an int (well below Python's int/str conversion limit).
MAX_NUMBER_DIGITS = 9
