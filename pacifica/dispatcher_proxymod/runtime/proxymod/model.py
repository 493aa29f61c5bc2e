"""The proxymod model: ``Prox`` imitates a scientific model that advances through years.

Built from a configuration file, a ``Prox`` sleeps ``runtime`` seconds (failing on purpose when
``failure = 1``), then reads two year/value inputs. Each :meth:`Prox.advance` replaces the current
year's value in both inputs by its square root and writes both as CSV files, byte for byte as the
original proxymod does: a ``year,value`` header, then ``<year>,<value>`` lines in input order, the
value formatted by ``str`` (Python's default float formatting), ``\\n`` line endings.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Container

from .config import ConfigError, MissingPathError, ProxConfig, read_config
from .logger import kill_log, make_log

__all__ = ["ConfigError", "InputSource", "MissingPathError", "Prox", "read_csv", "write_csv"]

#: An input: the path of a ``year,value`` CSV, or values already read, ``{year_str: value}``.
#: A dict is used as it is (not copied), as the original proxymod does: advancing changes it.
InputSource = str | os.PathLike[str] | dict[str, float]

FAILURE_MESSAGE = "You raised an error on purpose."


class Prox:
    """One proxymod model run.

    Give either ``target_yr`` (every :meth:`advance` works on that year) or ``start_yr``,
    ``end_yr`` and ``step`` (the first :meth:`advance` works on ``start_yr``, each later one
    ``step`` years on). ``in_one``/``in_two`` replace the configuration's input files.

    Construction creates ``<out_dir>/<model_name>_outputs/`` and the log, sleeps, may fail on
    purpose (RuntimeError) and reads the inputs. Call :meth:`close` when done.
    """

    def __init__(
        self,
        config: str | os.PathLike[str],
        model_name: str,
        start_yr: int | None = None,
        end_yr: int | None = None,
        step: int | None = None,
        target_yr: int | None = None,
        in_one: InputSource | None = None,
        in_two: InputSource | None = None,
    ) -> None:
        if not isinstance(model_name, str) or not model_name or "/" in model_name:
            raise ValueError(f"model_name must be a non-empty name without '/', got {model_name!r}")
        self.model_name = model_name
        self.start_year = None if start_yr is None else int(start_yr)
        self.end_year = None if end_yr is None else int(end_yr)
        self.step = None if step is None else int(step)
        self.target_yr = None if target_yr is None else int(target_yr)
        self.yr_range: Container[int] = self._year_range()
        label = f"{self.start_year}_{self.end_year}" if self.target_yr is None else self.target_yr

        self.config: ProxConfig = read_config(
            config, model_name, reads_input_one=in_one is None, reads_input_two=in_two is None
        )
        os.makedirs(self.config.out_dir, exist_ok=True)
        self.out_file_1 = os.path.join(self.config.out_dir, f"output1_{model_name}_{label}.csv")
        self.out_file_2 = os.path.join(self.config.out_dir, f"output2_{model_name}_{label}.csv")
        self.log: logging.Logger = make_log(self.config.out_dir, model_name)

        self.log.info("Starting %s", model_name)
        for name, value in self._logged_settings(in_one, in_two):
            self.log.info("CONFIG: [PARAMETER] %s -- [VALUE] %s", name, value)

        time.sleep(self.config.runtime)
        if self.config.failure == 1:
            self.log.error(FAILURE_MESSAGE)
            self.close()
            raise RuntimeError(FAILURE_MESSAGE)

        try:
            self.param_1: dict[str, float] = self._read_input(in_one, self.config.in_file_one)
            self.param_2: dict[str, float] = self._read_input(in_two, self.config.in_file_two)
        except Exception as exc:
            self.log.error("Could not read the inputs: %s", exc)
            kill_log(self.log)
            raise

        #: The year the last advance() worked on (0 before the first).
        self.set_yr = 0
        self._advanced = False

    def _logged_settings(
        self, in_one: InputSource | None, in_two: InputSource | None
    ) -> list[tuple[str, str]]:
        """The text-valued settings mirrored into the log, in proxymod's (alphabetical) order.

        An input passed in as a path is logged as given; one passed in as a dict is not logged.
        """
        settings = {
            "in_dir": self.config.in_dir,
            "in_file_one": self.config.in_file_one if in_one is None else in_one,
            "in_file_two": self.config.in_file_two if in_two is None else in_two,
            "model_name": self.model_name,
            "out_dir": self.config.out_dir,
        }
        return [
            (name, os.fspath(value))
            for name, value in sorted(settings.items())
            if isinstance(value, str | os.PathLike)
        ]

    def _year_range(self) -> Container[int]:
        """The years to read from the inputs; raises ValueError when they are not defined."""
        if self.start_year is not None and self.end_year is not None and self.step is not None:
            if self.step == 0:
                raise ValueError("step must not be 0")
            return range(self.start_year, self.end_year + self.step, self.step)
        if self.target_yr is not None:
            return [self.target_yr]
        raise ValueError("Either 'target_yr' or 'start_yr, end_yr, and step' need to be defined.")

    def _read_input(self, given: InputSource | None, configured: str | None) -> dict[str, float]:
        """The values of one input: the dict passed in, or the CSV passed in or configured."""
        if isinstance(given, dict):
            return given
        if given is None:
            if configured is None:  # read_config guarantees it; kept for the type checker
                raise ValueError(f"{self.config.path}: no input file configured")
            return read_csv(configured, self.yr_range)
        if isinstance(given, str | os.PathLike):
            return read_csv(os.fspath(given), self.yr_range)
        raise ValueError(
            f"an input must be a CSV path (str) or a dict of values, got {type(given).__name__}"
        )

    def advance(self) -> None:
        """Take the square root of the current year's value in both inputs; write both outputs.

        The current year is ``target_yr`` on every call when it was given; otherwise ``start_yr``
        on the first call and ``step`` years more on each later one. Raises KeyError when an input
        has no value for the current year.
        """
        if self.target_yr is not None:
            self.set_yr = self.target_yr
        elif self._advanced and self.step is not None:
            self.set_yr += self.step
        elif self.start_year is not None:
            self.set_yr = self.start_year
        self._advanced = True

        year = str(self.set_yr)
        for number, values in ((1, self.param_1), (2, self.param_2)):
            if year not in values:
                message = f"year {year} is not in input {number} of model {self.model_name}"
                self.log.error(message)
                raise KeyError(message)
        self.param_1[year] = math.sqrt(self.param_1[year])
        self.param_2[year] = math.sqrt(self.param_2[year])

        write_csv(self.out_file_1, self.param_1)
        write_csv(self.out_file_2, self.param_2)

    def close(self) -> None:
        """Log the completion and close the log file."""
        self.log.info("Completed %s", self.model_name)
        kill_log(self.log)


def read_csv(path: str, years: Container[int]) -> dict[str, float]:
    """Read a ``year,value`` CSV into ``{year_str: value}``, in file order, for ``years`` only.

    The first line (the header) is skipped, and so are blank lines; the year is kept as written.
    Raises ValueError, naming the file and line, for a row that is not ``<int>,<float>``.
    """
    values: dict[str, float] = {}
    with open(path, encoding="utf-8") as handle:
        next(handle, None)
        for line_number, line in enumerate(handle, start=2):
            row = line.strip()
            if not row:
                continue
            fields = row.split(",")
            try:
                if len(fields) < 2:
                    raise ValueError("expected 'year,value'")
                if int(fields[0]) in years:
                    values[fields[0]] = float(fields[1])
            except ValueError as exc:
                raise ValueError(f"{path}, line {line_number}: {row!r}: {exc}") from None
    return values


def write_csv(path: str, values: dict[str, float]) -> None:
    """Write ``values`` as a ``year,value`` CSV with ``\\n`` line endings."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("year,value\n")
        for year, value in values.items():
            out.write(f"{year},{value}\n")
