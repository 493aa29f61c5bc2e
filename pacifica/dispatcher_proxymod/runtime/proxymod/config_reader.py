"""``proxymod.config_reader.ReadConfig``: one configuration file read and checked for one model.

As the original does, in its order: the output directory
``<[OUTPUTS] out_dir>/<model_name>_outputs`` and the model's log are created first, then
``[PROJECT] runtime`` (a number >= 0) and ``failure`` (0 or 1), then ``[INPUTS]`` (``in_dir``
must exist, and so must ``in_file_one``/``in_file_two`` unless the caller passes that input in).
The original *evaluates* the two numbers as Python; this one reads them as Python literals only
(``2``, ``2.5`` -> 2, ``1e3``, ``0x10``, ``True``), never running code. Where the original crashes
(a missing section or key, a list where one value belongs) this one raises :class:`ConfigError`
saying what to fix. ``runtime = 0``, on which the original crashes comparing 0 with None, is
accepted.
"""

import argparse
import ast as _ast
import os
from typing import Any as _Any

from . import logger
from ._ini import IniError as _IniError
from ._ini import Section as _Section
from ._ini import Value as _Value
from ._ini import read_ini as _read_ini

__all__ = ["ConfigError", "MissingPathError", "ReadConfig"]


class ConfigError(ValueError):
    """A proxymod configuration is invalid; the message names the file, section and key."""


class MissingPathError(ConfigError, FileNotFoundError):
    """The configuration file, or an input directory or file it names, does not exist."""


class ReadConfig:
    """The checked configuration: ``model_name``, ``out_dir``, ``log``, ``runtime``, ``failure``,
    ``in_dir`` (only with ``[INPUTS]``), ``in_file_one``/``in_file_two`` (paths, or the inputs
    passed in), and the output name templates ``out_file_one``/``out_file_two``.

    With neither ``config`` nor ``model_name``, both are read from the command line
    (``-config_file``, ``-model_name``), as the original does.
    """

    def __init__(
        self,
        config: _Any = None,
        model_name: _Any = None,
        in_one: _Any = None,
        in_two: _Any = None,
    ) -> None:
        if config is None and model_name is None:
            args = self.parse_args()
            ini = self.check_file(args.config_file)
            self.model_name = args.model_name
        else:
            if not isinstance(config, str):
                raise ConfigError(
                    f"config must be the path of an INI file as a str, got {config!r} "
                    "(proxymod cannot read other types)"
                )
            if not os.path.isfile(config):
                raise MissingPathError(f"configuration file does not exist: {config}")
            ini = config
            self.model_name = model_name
        if "/" in str(self.model_name):
            raise ValueError(f"model_name must not contain '/', got {self.model_name!r}")
        try:
            root = _read_ini(ini)
        except _IniError as exc:
            raise ConfigError(f"not a valid INI file: {exc}") from None

        outputs = _section(root, ini, "OUTPUTS")
        root_out = self.make_ifnot(_text(ini, outputs, "out_dir"))
        self.out_dir = self.make_ifnot(os.path.join(root_out, f"{self.model_name}_outputs"))
        self.log = logger.make_log(self.out_dir, self.model_name)

        project = _section(root, ini, "PROJECT")
        inputs = root.section("INPUTS")
        if inputs is None and not (in_one is not None and in_two is not None):
            raise ConfigError(
                f"{ini}: missing section [INPUTS]; it is required unless both inputs "
                "(in_one and in_two) are passed to the model"
            )
        self.runtime = self._number(ini, project, "runtime", None)
        self.failure = self._number(ini, project, "failure", 1)

        if inputs is not None:
            self.in_dir = self.check_dir(_text(ini, inputs, "in_dir"), f"{ini}: [INPUTS] in_dir")
        if in_one is None:
            self.in_file_one = self._input(ini, inputs, "in_file_one")
        else:
            self.in_file_one = in_one
        if in_two is None:
            self.in_file_two = self._input(ini, inputs, "in_file_two")
        else:
            self.in_file_two = in_two

        self.out_file_one = os.path.join(self.out_dir, "output1_{}_{}.csv")
        self.out_file_two = os.path.join(self.out_dir, "output2_{}_{}.csv")

    def _number(self, ini: str, project: _Section, key: str, end: int | None) -> int:
        try:
            return self.valid_range(_value(ini, project, key), 0, end, "int")
        except ConfigError as exc:
            if str(exc).startswith(ini):
                raise
            raise ConfigError(f"{ini}: [PROJECT] {key}: {exc}") from None

    def _input(self, ini: str, inputs: _Section | None, key: str) -> _Any:
        if inputs is None:  # ruled out above; kept for the type checker
            raise ConfigError(f"{ini}: missing section [INPUTS], needed for {key}")
        return self.check_file(
            os.path.join(self.in_dir, _text(ini, inputs, key)), f"{ini}: [INPUTS] {key}"
        )

    @staticmethod
    def check_dir(pth: _Any, what: str = "") -> _Any:
        """``pth`` when it is an existing directory, else :class:`MissingPathError`."""
        if os.path.isdir(pth):
            return pth
        raise MissingPathError(
            f"{what}: directory does not exist: {pth}"
            if what
            else f"Directory does not exist: {pth}"
        )

    @staticmethod
    def check_file(pth: _Any, what: str = "") -> _Any:
        """``pth`` when it is an existing file, else :class:`MissingPathError`."""
        if isinstance(pth, str | os.PathLike) and os.path.isfile(pth):
            return pth
        raise MissingPathError(
            f"{what}: file does not exist: {pth}" if what else f"File does not exist: {pth}"
        )

    @staticmethod
    def valid_range(v: _Any, start: int, end: int | None, typ: str) -> int:
        """``v`` converted with ``typ`` (only ``int``), checked ``start <= v <= end``.

        ``v`` is the text of a Python literal, read without running anything; ``end`` None means
        no upper limit.
        """
        if typ != "int":
            raise ConfigError(f"only 'int' values are read, not {typ!r}")
        number = _literal_int(v)
        if number < start or (end is not None and number > end):
            upper = "" if end is None else f" to {end}"
            raise ConfigError(f"must be from {start}{upper}, got {number}")
        return number

    @staticmethod
    def make_ifnot(pth: _Any) -> _Any:
        """Create the directory ``pth`` (with parents) if it does not exist; return ``pth``."""
        if not os.path.isdir(pth):
            os.makedirs(pth)
        return pth

    @staticmethod
    def parse_args() -> argparse.Namespace:
        """``-config_file`` and ``-model_name`` from the command line."""
        parser = argparse.ArgumentParser()
        parser.add_argument(
            "-config_file",
            type=str,
            required=True,
            help="Input configuration file full path with file name and extension",
        )
        parser.add_argument("-model_name", type=str, required=True, help="Proxy model name")
        return parser.parse_args()


def _section(root: _Section, ini: str, name: str) -> _Section:
    section = root.section(name)
    if section is None:
        raise ConfigError(f"{ini}: missing section [{name}]")
    return section


def _value(ini: str, section: _Section, key: str) -> _Value:
    try:
        value = section.value(key)
    except _IniError as exc:
        raise ConfigError(f"{ini}: {exc}") from None
    if value is None:
        raise ConfigError(f"{ini}: [{section.name}] is missing the key {key!r}")
    return value


def _text(ini: str, section: _Section, key: str) -> str:
    """A value that must be one text, not a list (``a, b``); empty is an error."""
    value = _value(ini, section, key)
    if isinstance(value, list):
        raise ConfigError(
            f"{ini}: [{section.name}] {key} is a list ({', '.join(value)}): one value is "
            "expected; put quotes around a value that holds a comma"
        )
    if not value:
        raise ConfigError(f"{ini}: [{section.name}] {key} is empty")
    return value


def _literal_int(v: _Any) -> int:
    """``int(v)`` as the original computes it from the text ``v``, for literals only."""
    if isinstance(v, list):
        raise ConfigError(f"expected one number, got the list {v!r}")
    text = str(v).strip()
    if not text:
        return 0  # the original evaluates int(), which is 0
    try:
        literal = _ast.literal_eval(text)
        if isinstance(literal, bool | int | float | str):
            return int(literal)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, OverflowError):
        pass
    raise ConfigError(
        f"must be a whole number (or a decimal, which is cut to one), got {text!r}; "
        "it is read as a number, never run as Python"
    )
