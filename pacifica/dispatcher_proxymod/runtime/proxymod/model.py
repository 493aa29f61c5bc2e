"""``proxymod.model.Prox``: a stand-in scientific model that advances through years.

Built from a configuration file (:class:`~proxymod.config_reader.ReadConfig`, kept as ``c``), a
``Prox`` logs its settings, sleeps ``runtime`` seconds (failing on purpose when ``failure = 1``),
then reads two year/value inputs. Each :meth:`Prox.advance` replaces the current year's value in
both inputs by its square root and writes both as CSV files, byte for byte as the original does.
The public names, attributes and methods are the original's (``c``, ``yr_range``, ``param_1``,
``param_2``, ``idx``, ``set_yr``, ``out_file_1``..., ``read_csv``, ``build_output``, ``modify``...);
where the original crashes with an unhelpful error, the error here says what to fix.
"""

import math
import time
from typing import Any as _Any

from . import logger
from .config_reader import ReadConfig

# What ``from proxymod.model import *`` gives in the original (it has no __all__). Every other
# module-level name starts with "_", so a model sees the original's names only.
__all__ = ["Prox", "ReadConfig", "logger", "math", "time"]

_FAILURE = "You raised an error on purpose."
_NO_YEARS = "Either 'target_yr' or 'start_yr, end_yr, and step' need to be defined."
_BAD_TYPE = "Type for either input one or two must be either 'str' or 'dict'"


class Prox:
    """One proxymod model run.

    Give either ``target_yr`` (every :meth:`advance` works on that year) or ``start_yr``,
    ``end_yr`` and ``step`` (the first :meth:`advance` works on ``start_yr``, each later one
    ``step`` years on). ``in_one``/``in_two`` (a CSV path as ``str`` or a ``dict`` of values, used
    as it is) replace the configuration's input files. Call :meth:`close` when done.
    """

    def __init__(
        self,
        config: _Any = None,
        model_name: _Any = None,
        start_yr: _Any = None,
        end_yr: _Any = None,
        step: _Any = None,
        target_yr: _Any = None,
        in_one: _Any = None,
        in_two: _Any = None,
    ) -> None:
        self.c = ReadConfig(config, model_name, in_one, in_two)
        self.start_year = None if start_yr is None else int(start_yr)
        self.end_year = None if end_yr is None else int(end_yr)
        self.step: _Any = None if step is None else int(step)
        self.target_yr = None if target_yr is None else int(target_yr)
        self.yr_range = self.set_yr_range()
        self.param_1 = in_one
        self.param_2 = in_two
        self.log = self.c.log

        if target_yr is None and start_yr is None:
            self.log.error(_NO_YEARS)
            raise ValueError(_NO_YEARS)
        if target_yr is None:
            yrs: object = f"{self.start_year}_{self.end_year}"
        else:
            yrs = self.target_yr
        self.out_file_1 = self.c.out_file_one.format(self.c.model_name, yrs)
        self.out_file_2 = self.c.out_file_two.format(self.c.model_name, yrs)

        self.log.info(f"Starting {self.c.model_name}")
        self.log_config()
        self.prepare()
        self.idx = 0
        self.set_yr: _Any = 0

    def prepare(self) -> None:
        """Sleep ``runtime`` seconds, fail on purpose if asked, read the inputs."""
        time.sleep(self.c.runtime)
        if self.c.failure == 1:
            self.log.error(_FAILURE)
            self.close()
            raise RuntimeError(_FAILURE)
        self.read_data()

    def close(self) -> None:
        """Log the completion and close the log."""
        self.log.info(f"Completed {self.c.model_name}")
        logger.kill_log(self.log)

    def set_yr_range(self) -> _Any:
        """The years read from the inputs: ``[target_yr]`` or ``range(start, end + step, step)``."""
        if self.start_year is None and self.end_year is None:
            return [self.target_yr]
        if self.start_year is None or self.end_year is None or self.step is None:
            raise ValueError(
                "start_yr, end_yr and step must be given together, got "
                f"start_yr={self.start_year}, end_yr={self.end_year}, step={self.step}"
            )
        if self.step == 0:
            raise ValueError("step must not be 0")
        return range(self.start_year, self.end_year + self.step, self.step)

    def modify(self) -> None:
        """Replace the current year's value in both inputs by its square root."""
        yr = str(self.set_yr)
        for number in (1, 2):
            values = self.param_1 if number == 1 else self.param_2
            if yr not in values:
                raise KeyError(
                    f"year {yr} is not in input {number} of model {self.c.model_name} "
                    f"({self._source(number)}): it has no row for that year"
                )
            try:
                values[yr] = math.sqrt(values[yr])
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"year {yr} of input {number} of model {self.c.model_name} "
                    f"({self._source(number)}): cannot take the square root of "
                    f"{values[yr]!r} ({exc})"
                ) from None

    def _source(self, number: int) -> str:
        given = self.c.in_file_one if number == 1 else self.c.in_file_two
        return given if isinstance(given, str) else "values passed in"

    @staticmethod
    def read_csv(f: str, yr_range: _Any) -> dict[str, float]:
        """Read a ``year,value`` CSV into ``{year_str: value}``, in file order, for ``yr_range``.

        The first line (the header) is skipped; a row whose year is outside ``yr_range`` is never
        looked at further. Raises ValueError naming the file and line for any other bad row.
        """
        d: dict[str, float] = {}
        with open(f) as o:  # the locale's encoding, as the original
            for idx, line in enumerate(o):
                if idx == 0:
                    continue
                row = line.strip().split(",")
                try:
                    year = int(row[0])
                except ValueError:
                    raise ValueError(
                        f"{f}, line {idx + 1}: {line.strip()!r}: the year {row[0]!r} is not a "
                        "whole number (every row after the header is 'year,value'; no blank lines)"
                    ) from None
                if year not in yr_range:
                    continue
                if len(row) < 2:
                    raise ValueError(
                        f"{f}, line {idx + 1}: {line.strip()!r}: the year {year} is read, "
                        "but the row has no value column"
                    )
                try:
                    d[row[0]] = float(row[1])
                except ValueError:
                    raise ValueError(
                        f"{f}, line {idx + 1}: {line.strip()!r}: the value {row[1]!r} is not a "
                        "number"
                    ) from None
        return d

    def read_data(self) -> None:
        """Read the inputs: a ``str`` is a CSV path, a ``dict`` is used as it is."""
        inputs = []
        given: _Any
        for given in (self.c.in_file_one, self.c.in_file_two):
            if type(given) is str:
                inputs.append(self.read_csv(given, self.yr_range))
            elif type(given) is dict:
                inputs.append(given)
            else:
                message = f"{_BAD_TYPE}, got {type(given).__name__}"
                self.log.error(message)
                raise ValueError(message)
        self.param_1, self.param_2 = inputs

    @staticmethod
    def build_output(f: str, d: dict[_Any, _Any]) -> None:
        """Write ``d`` to ``f`` as a ``year,value`` CSV."""
        with open(f, "w") as out:  # as the original writes it
            out.write("year,value\n")
            for k in d.keys():  # noqa: SIM118 - the original's iteration
                out.write(f"{k},{d[k]}\n")

    def advance(self) -> None:
        """Move to the next year (see the class), take its square roots, write both outputs."""
        if self.idx == 0 and self.target_yr is None:
            self.set_yr = self.start_year
            self.idx += 1
        elif self.idx == 0 and self.target_yr is not None:
            self.set_yr = self.target_yr
        else:
            self.set_yr += self.step
        self.modify()
        self.build_output(self.out_file_1, self.param_1)
        self.build_output(self.out_file_2, self.param_2)

    def log_config(self) -> None:
        """Log every text setting of ``c`` (but the output names), in alphabetical order."""
        for name in dir(self.c):
            value = getattr(self.c, name)
            if type(value) is str and name[:2] != "__" and "out_file_" not in name:
                self.log.info(f"CONFIG: [PARAMETER] {name} -- [VALUE] {value}")
