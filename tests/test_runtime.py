"""Tests of our proxymod runtime (pacifica/dispatcher_proxymod/runtime/proxymod).

Two ways in, as the brief asks: in-process with RUNTIME_DIR put on sys.path by a fixture, and model
files run in a subprocess with PYTHONPATH=RUNTIME_DIR, which is how the sandbox runs them. Expected
output bytes are computed here, independently of the runtime.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pacifica.dispatcher_proxymod.runtime import RUNTIME_DIR
from pacifica.dispatcher_proxymod.sandbox import run_model
from pacifica.dispatcher_proxymod.settings import ModelLimits, Settings

REPO_DIR = Path(__file__).resolve().parents[1]
LIMITS = ModelLimits(
    timeout_seconds=60, memory_mb=512, cpu_seconds=60, file_size_mb=16, open_files=64, processes=32
)
EXAMPLE_DATA = REPO_DIR / "examples" / "data"

STAMP = r"\d{4}-\d{2}-\d{2}_\d{2}h\d{2}m\d{2}s"
LOG_LINE = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) - (?P<name>\S+) - "
    r"(?P<level>[A-Z]+) - (?P<message>.*)$"
)

# Our own test inputs: years deliberately not sorted, one outside every range used below.
INPUT_ONE = [("2005", 9.0), ("2015", 2.0), ("2010", 0.3), ("2020", 1e-07), ("2025", 7.5)]
INPUT_TWO = [("2005", 1.0), ("2015", 1e22), ("2010", 123.456), ("2020", 0.0), ("2025", 3.0)]


# ----------------------------------------------------------------------------- helpers


def sqrt_n(value: float, times: int) -> float:
    """``value`` after ``times`` square roots, one after another (as chained models take them)."""
    for _ in range(times):
        value = math.sqrt(value)
    return value


def csv_bytes(rows: list[tuple[str, float]]) -> bytes:
    """What proxymod writes for ``rows``: header, then ``year,repr(value)`` lines, ``\\n`` ends."""
    return ("year,value\n" + "".join(f"{year},{value!r}\n" for year, value in rows)).encode()


def write_csv(path: Path, rows: list[tuple[str, float]], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["year,value"] + [f"{year},{value!r}" for year, value in rows]
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def write_ini(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def standard_ini(
    base: Path, name: str = "config.ini", runtime: str = "0", failure: str = "0"
) -> Path:
    """An INI reading base/inputs/in_file_*.csv and writing under base/outputs."""
    return write_ini(
        base / name,
        f"""
        [PROJECT]
        runtime = {runtime}
        failure = {failure}
        [INPUTS]
        in_dir = {base / "inputs"}
        in_file_one = in_file_one.csv
        in_file_two = in_file_two.csv
        [OUTPUTS]
        out_dir = {base / "outputs"}
        """,
    )


def log_records(text: str) -> list[tuple[str, str, str]]:
    """(logger name, level, message) of every log line in ``text``; fails on a malformed line."""
    records = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        assert match, f"not a proxymod log line: {line!r}"
        records.append((match["name"], match["level"], match["message"]))
    return records


def model_env(*extra_paths: Path) -> dict[str, str]:
    """The environment of a model subprocess: our runtime (and extra dirs) on PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in (RUNTIME_DIR, *extra_paths))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in examples/data/models
    return env


def config_reader() -> ModuleType:
    """``proxymod.config_reader`` as imported by the ``proxymod`` fixture."""
    return sys.modules["proxymod.config_reader"]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture()
def proxymod(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """Our runtime imported as top-level ``proxymod.model``, as model files see it."""
    monkeypatch.syspath_prepend(str(RUNTIME_DIR))
    module = importlib.import_module("proxymod.model")
    assert Path(module.__file__ or "").parent == RUNTIME_DIR / "proxymod"
    yield module
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("proxymod_logger_") and isinstance(logger, logging.Logger):
            module.logger.kill_log(logger)  # what a run that raised left open
    for name in [name for name in sys.modules if name.split(".")[0] == "proxymod"]:
        del sys.modules[name]


@pytest.fixture()
def base(tmp_path: Path) -> Path:
    """A work directory holding inputs/in_file_one.csv and inputs/in_file_two.csv."""
    write_csv(tmp_path / "inputs" / "in_file_one.csv", INPUT_ONE)
    write_csv(tmp_path / "inputs" / "in_file_two.csv", INPUT_TWO)
    return tmp_path


# ----------------------------------------------------------------------------- isolation


def test_runtime_dir_holds_proxymod_model() -> None:
    assert RUNTIME_DIR.is_absolute()
    assert (RUNTIME_DIR / "proxymod" / "model.py").is_file()


def test_runtime_is_not_a_top_level_proxymod_in_the_service_environment() -> None:
    probe = (
        "import importlib.util, sys\n"
        "spec = importlib.util.find_spec('proxymod')\n"
        "print(spec.origin if spec else 'absent')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    origin = result.stdout.strip()
    assert origin == "absent" or not origin.startswith(str(RUNTIME_DIR))


def test_runtime_imports_only_the_standard_library() -> None:
    probe = textwrap.dedent(
        f"""
        import sys, sysconfig
        sys.path.insert(0, {str(RUNTIME_DIR)!r})
        import proxymod.model
        allowed = [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"],
                   {str(RUNTIME_DIR)!r}]
        for name, module in sorted(sys.modules.items()):
            origin = getattr(module, "__file__", None)
            if origin and not any(origin.startswith(prefix) for prefix in allowed):
                print("NOT STDLIB", name, origin)
        print("pacifica loaded" if "pacifica" in sys.modules else "ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "ok", result.stdout


# ----------------------------------------------------------------------------- outputs


def test_start_end_step_run_writes_exact_bytes_after_every_advance(
    proxymod: ModuleType, base: Path
) -> None:
    model = proxymod.Prox(str(standard_ini(base)), "m", start_yr=2010, end_yr=2020, step=5)
    kept_one = [row for row in INPUT_ONE if 2010 <= int(row[0]) <= 2020]
    kept_two = [row for row in INPUT_TWO if 2010 <= int(row[0]) <= 2020]
    for year in ("2010", "2015", "2020"):
        model.advance()
        kept_one = [(y, math.sqrt(v) if y == year else v) for y, v in kept_one]
        kept_two = [(y, math.sqrt(v) if y == year else v) for y, v in kept_two]
        assert Path(model.out_file_1).read_bytes() == csv_bytes(kept_one)
        assert Path(model.out_file_2).read_bytes() == csv_bytes(kept_two)
    model.close()
    # file order kept (2015 before 2010), 2005 and 2025 dropped, floats as Python prints them
    assert Path(model.out_file_1).read_bytes() == (
        b"year,value\n2015,1.4142135623730951\n2010,0.5477225575051661\n"
        b"2020,0.00031622776601683794\n"
    )
    assert Path(model.out_file_2).read_bytes() == (
        b"year,value\n2015,100000000000.0\n2010,11.111075555498667\n2020,0.0\n"
    )


def test_output_directory_and_file_names(proxymod: ModuleType, base: Path) -> None:
    ranged = proxymod.Prox(str(standard_ini(base)), "alpha", start_yr=2010, end_yr=2020, step=5)
    single = proxymod.Prox(str(standard_ini(base)), "beta", target_yr=2015)
    ranged.close()
    single.close()
    out = base / "outputs"
    assert ranged.out_file_1 == os.path.join(out, "alpha_outputs", "output1_alpha_2010_2020.csv")
    assert ranged.out_file_2 == os.path.join(out, "alpha_outputs", "output2_alpha_2010_2020.csv")
    assert single.out_file_1 == os.path.join(out, "beta_outputs", "output1_beta_2015.csv")
    assert single.out_file_2 == os.path.join(out, "beta_outputs", "output2_beta_2015.csv")
    assert isinstance(single.out_file_1, str)
    assert (out / "alpha_outputs").is_dir()
    assert (out / "beta_outputs").is_dir()


def test_output_directory_parents_are_created(proxymod: ModuleType, base: Path) -> None:
    ini = write_ini(
        base / "deep.ini",
        f"""
        [PROJECT]
        runtime = 0
        failure = 0
        [INPUTS]
        in_dir = {base / "inputs"}
        in_file_one = in_file_one.csv
        in_file_two = in_file_two.csv
        [OUTPUTS]
        out_dir = {base / "a" / "b" / "c"}
        """,
    )
    model = proxymod.Prox(str(ini), "m", target_yr=2010)
    model.advance()
    model.close()
    assert Path(model.out_file_1).read_bytes() == csv_bytes([("2010", math.sqrt(0.3))])
    assert Path(model.out_file_1).parent == base / "a" / "b" / "c" / "m_outputs"


def test_target_year_advance_takes_another_root_of_the_same_year(
    proxymod: ModuleType, base: Path
) -> None:
    model = proxymod.Prox(str(standard_ini(base)), "m", target_yr=2015)
    assert model.param_1 == {"2015": 2.0}
    for times in (1, 2, 3):
        model.advance()
        assert Path(model.out_file_1).read_bytes() == csv_bytes([("2015", sqrt_n(2.0, times))])
        assert Path(model.out_file_2).read_bytes() == csv_bytes([("2015", sqrt_n(1e22, times))])
    model.close()


def test_advance_on_a_year_missing_from_the_inputs_raises_key_error(
    proxymod: ModuleType, base: Path
) -> None:
    single = proxymod.Prox(str(standard_ini(base)), "m", target_yr=2012)
    with pytest.raises(KeyError, match="2012"):
        single.advance()
    single.close()
    ranged = proxymod.Prox(str(standard_ini(base)), "n", start_yr=2020, end_yr=2030, step=5)
    ranged.advance()
    ranged.advance()
    with pytest.raises(KeyError, match="2030"):
        ranged.advance()
    ranged.close()


def test_years_must_be_given(proxymod: ModuleType, base: Path) -> None:
    with pytest.raises(ValueError, match="Either 'target_yr' or 'start_yr, end_yr, and step'"):
        proxymod.Prox(str(standard_ini(base)), "m")
    # the original crashes with a TypeError (None + 5); this names what is missing
    with pytest.raises(ValueError, match="start_yr, end_yr and step must be given together"):
        proxymod.Prox(str(standard_ini(base)), "m", start_yr=2010, step=5)
    with pytest.raises(ValueError, match="step must not be 0"):
        proxymod.Prox(str(standard_ini(base)), "m", start_yr=2010, end_yr=2020, step=0)


# ----------------------------------------------------------------------------- inputs


def test_inputs_passed_as_paths_and_dicts(proxymod: ModuleType, base: Path) -> None:
    other = write_csv(base / "elsewhere" / "one.csv", [("2010", 16.0), ("2015", 81.0)])
    given: dict[str, float] = {"2015": 625.0, "2010": 4.0}
    model = proxymod.Prox(
        str(standard_ini(base)), "m", start_yr=2010, end_yr=2015, step=5, in_one=str(other),
        in_two=given,
    )  # fmt: skip
    assert model.param_2 is given  # a dict is used as it is, as proxymod does
    model.advance()
    model.advance()
    model.close()
    assert Path(model.out_file_1).read_bytes() == b"year,value\n2010,4.0\n2015,9.0\n"
    assert Path(model.out_file_2).read_bytes() == b"year,value\n2015,25.0\n2010,2.0\n"
    assert given == {"2015": 25.0, "2010": 2.0}


def test_inputs_section_is_optional_when_both_inputs_are_passed(
    proxymod: ModuleType, base: Path
) -> None:
    ini = write_ini(
        base / "no_inputs.ini",
        f"""
        [PROJECT]
        runtime = 0
        failure = 0
        [OUTPUTS]
        out_dir = {base / "outputs"}
        """,
    )
    first = base / "inputs" / "in_file_one.csv"
    model = proxymod.Prox(str(ini), "m", target_yr=2010, in_one=str(first), in_two=str(first))
    model.advance()
    model.close()
    assert Path(model.out_file_2).read_bytes() == csv_bytes([("2010", math.sqrt(0.3))])
    with pytest.raises(ValueError, match=r"missing section \[INPUTS\]"):
        proxymod.Prox(str(ini), "m", target_yr=2010, in_one=str(first))
    assert not hasattr(model.c, "in_dir")  # as the original: no [INPUTS], no in_dir


def test_csv_reading_rules(proxymod: ModuleType, base: Path) -> None:
    (base / "inputs" / "in_file_one.csv").write_bytes(
        b"anything,here\r\n2015,4.0\r\n2005\r\n2010, 9.0 ,extra\r\n2099,not-a-number\r\n"
        b"2095\r\n2015,1e2\r\n"
    )
    model = proxymod.Prox(str(standard_ini(base)), "m", start_yr=2010, end_yr=2015, step=5)
    model.close()
    # header skipped whatever it says, CRLF accepted, extra columns ignored, a later row of a
    # year replaces its value in place, a row outside the years is never looked at further:
    # neither a bad value nor a missing value column (2005, 2095) stops the run
    assert model.param_1 == {"2015": 100.0, "2010": 9.0}
    assert list(model.param_1) == ["2015", "2010"]


def test_a_year_outside_the_run_needs_no_value_through_the_sandbox(base: Path) -> None:
    """The gap the issue names, run as the dispatcher runs models (run_model.py, a sandbox)."""
    (base / "inputs" / "in_file_one.csv").write_text("year,value\n2005\n2010,16\n2100\n")
    standard_ini(base, name="config_1.ini")
    (base / "models").mkdir()
    (base / "models" / "one.py").write_text(
        "from proxymod.model import Prox\n\n"
        "def one(config):\n"
        "    model = Prox(config, 'one', target_yr=2010)\n"
        "    model.advance()\n"
        "    model.close()\n"
    )
    run = run_model(
        base / "models" / "one.py",
        [base / "config_1.ini"],
        base,
        base / "stdout.log",
        base / "stderr.log",
        Settings(sandbox="auto", limits=LIMITS),
    )
    assert run.ok, (run.to_json(), (base / "stderr.log").read_text())
    out = base / "outputs" / "one_outputs"
    assert (out / "output1_one_2010.csv").read_bytes() == b"year,value\n2010,4.0\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("year,value\n2010,1\n\n", r"line 3: '': the year '' is not a whole number"),
        ("year,value\n2010\n", r"line 2: '2010': the year 2010 is read, but the row has no value"),
        ("year,value\n2010,x\n", r"line 2: '2010,x': the value 'x' is not a number"),
        ("year,value\n2010.0,1\n", r"line 2: '2010.0,1': the year '2010.0' is not a whole"),
    ],
)
def test_csv_rows_the_original_crashes_on_are_explained(
    proxymod: ModuleType, base: Path, text: str, reason: str
) -> None:
    (base / "inputs" / "in_file_one.csv").write_text(text)
    with pytest.raises(ValueError, match=rf"in_file_one\.csv, {reason}"):
        proxymod.Prox(str(standard_ini(base)), "m", target_yr=2010)


def test_bad_csv_row_names_file_and_line(proxymod: ModuleType, base: Path) -> None:
    (base / "inputs" / "in_file_two.csv").write_text("year,value\n2010,1.0\n2015;2.0\n")
    with pytest.raises(ValueError, match=r"in_file_two\.csv, line 3"):
        proxymod.Prox(str(standard_ini(base)), "m", start_yr=2010, end_yr=2015, step=5)


# ----------------------------------------------------------------------------- log


def test_log_lines_on_stdout_and_in_a_time_stamped_file(
    proxymod: ModuleType, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = proxymod.Prox(str(standard_ini(base)), "m1", target_yr=2010)
    model.advance()
    model.close()
    printed = capsys.readouterr().out
    out_dir = base / "outputs" / "m1_outputs"
    assert log_records(printed) == [
        ("proxymod_logger_m1", "INFO", "Starting m1"),
        ("proxymod_logger_m1", "INFO", f"CONFIG: [PARAMETER] in_dir -- [VALUE] {base / 'inputs'}"),
        (
            "proxymod_logger_m1",
            "INFO",
            f"CONFIG: [PARAMETER] in_file_one -- [VALUE] {base / 'inputs' / 'in_file_one.csv'}",
        ),
        (
            "proxymod_logger_m1",
            "INFO",
            f"CONFIG: [PARAMETER] in_file_two -- [VALUE] {base / 'inputs' / 'in_file_two.csv'}",
        ),
        ("proxymod_logger_m1", "INFO", "CONFIG: [PARAMETER] model_name -- [VALUE] m1"),
        ("proxymod_logger_m1", "INFO", f"CONFIG: [PARAMETER] out_dir -- [VALUE] {out_dir}"),
        ("proxymod_logger_m1", "INFO", "Completed m1"),
    ]
    logs = sorted(out_dir.glob("*.log"))
    assert len(logs) == 1
    assert re.fullmatch(rf"m1_{STAMP}\.log", logs[0].name)
    assert logs[0].read_text() == printed
    assert model.log.name == "proxymod_logger_m1"
    assert model.log.handlers == []


def test_passed_in_paths_are_logged_and_dicts_are_not(
    proxymod: ModuleType, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(base / "inputs" / "in_file_one.csv")
    model = proxymod.Prox(str(standard_ini(base)), "m", target_yr=2010, in_one=path, in_two={})
    model.close()
    messages = [message for _, _, message in log_records(capsys.readouterr().out)]
    assert f"CONFIG: [PARAMETER] in_file_one -- [VALUE] {path}" in messages
    assert not any("in_file_two" in message for message in messages)


def test_same_model_name_twice_unclosed_writes_twice_as_the_original(
    proxymod: ModuleType, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxymod.Prox(str(standard_ini(base)), "m", target_yr=2010)  # never closed
    capsys.readouterr()
    second = proxymod.Prox(str(standard_ini(base)), "m", target_yr=2010)
    second.close()
    messages = [message for _, _, message in log_records(capsys.readouterr().out)]
    # the original's logger cache never hits, so the first model's handlers stay on the logger
    assert messages.count("Starting m") == 2
    assert messages.count("Completed m") == 2
    assert logging.getLogger("proxymod_logger_m").handlers == []


def test_the_log_propagates_to_a_root_logger_the_model_configured(
    proxymod: ModuleType, base: Path
) -> None:
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        proxymod.Prox(str(standard_ini(base)), "m", target_yr=2010).close()
    finally:
        logging.getLogger().removeHandler(handler)
    assert seen[0] == "Starting m"
    assert seen[-1] == "Completed m"


# ----------------------------------------------------------------------------- PROJECT settings


def test_runtime_zero_is_accepted(proxymod: ModuleType, base: Path) -> None:
    model = proxymod.Prox(str(standard_ini(base, runtime="0")), "m", target_yr=2010)
    model.close()
    assert model.c.runtime == 0


def test_model_sleeps_runtime_seconds(proxymod: ModuleType, base: Path) -> None:
    started = time.monotonic()
    model = proxymod.Prox(str(standard_ini(base, runtime="1")), "m", target_yr=2010)
    model.close()
    assert time.monotonic() - started >= 1.0


def test_failure_raises_on_purpose_and_closes_the_log(
    proxymod: ModuleType, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RuntimeError) as raised:
        proxymod.Prox(str(standard_ini(base, failure="1")), "m", target_yr=2010)
    assert str(raised.value) == "You raised an error on purpose."
    records = log_records(capsys.readouterr().out)
    assert records[-2:] == [
        ("proxymod_logger_m", "ERROR", "You raised an error on purpose."),
        ("proxymod_logger_m", "INFO", "Completed m"),
    ]
    assert logging.getLogger("proxymod_logger_m").handlers == []
    assert [path.suffix for path in (base / "outputs" / "m_outputs").iterdir()] == [".log"]


@pytest.mark.parametrize(
    ("value", "number"),
    # what the original's int(<value>) gives; "" is int(), 0
    [("2", 2), ("2.5", 2), ("1e3", 1000), ("0x10", 16), ("1_000", 1000), ("+1", 1),
     ("'3'", 3), ("True", 1), ("", 0), ("0", 0)],
)  # fmt: skip
def test_runtime_numbers_read_as_the_original_reads_them(
    proxymod: ModuleType, base: Path, value: str, number: int
) -> None:
    config = config_reader().ReadConfig(str(standard_ini(base, runtime=value)), "m")
    assert config.runtime == number


@pytest.mark.parametrize("value", ["-1", "two", "\uff12", "[1]", "None", "1, 2", "1e400"])
def test_bad_runtime_values_are_rejected(proxymod: ModuleType, base: Path, value: str) -> None:
    with pytest.raises(ValueError, match=r"\[PROJECT\] runtime") as raised:
        proxymod.Prox(str(standard_ini(base, runtime=value)), "m", target_yr=2010)
    assert isinstance(raised.value, config_reader().ConfigError)


def test_runtime_is_never_evaluated(proxymod: ModuleType, base: Path) -> None:
    marker = base / "evaluated"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ValueError, match="runtime: must be a whole number"):
        proxymod.Prox(str(standard_ini(base, runtime=code)), "m", target_yr=2010)
    os_call = "__import__('os').system('x')"
    with pytest.raises(ValueError, match="runtime: must be a whole number"):
        proxymod.Prox(str(standard_ini(base, runtime=os_call)), "m", target_yr=2010)
    assert not marker.exists()


@pytest.mark.parametrize("value", ["2", "-1", "yes", "1, 0"])
def test_bad_failure_values_are_rejected(proxymod: ModuleType, base: Path, value: str) -> None:
    with pytest.raises(ValueError, match=r"\[PROJECT\] failure"):
        proxymod.Prox(str(standard_ini(base, failure=value)), "m", target_yr=2010)


@pytest.mark.parametrize(("value", "fails"), [("0.0", False), ("", False), ("1.0", True)])
def test_failure_numbers_read_as_the_original_reads_them(
    proxymod: ModuleType, base: Path, value: str, fails: bool
) -> None:
    ini = str(standard_ini(base, failure=value))
    if fails:
        with pytest.raises(RuntimeError, match="on purpose"):
            proxymod.Prox(ini, "m", target_yr=2010)
    else:
        proxymod.Prox(ini, "m", target_yr=2010).close()


def test_comments_and_quotes_in_the_ini(proxymod: ModuleType, base: Path) -> None:
    ini = write_ini(
        base / "commented.ini",
        f"""
        # a proxymod configuration
        [PROJECT]
        runtime = 0      # seconds
        failure = "0"
        [INPUTS]
        in_dir = '{base / "inputs"}'
        in_file_one = in_file_one.csv
        in_file_two = in_file_two.csv#a comment needs no space before it
        [ OUTPUTS ]
        \tout_dir = {base / "outputs"}
        """,
    )
    model = proxymod.Prox(str(ini), "m", target_yr=2015)
    model.close()
    assert (model.c.runtime, model.c.failure) == (0, 0)
    assert model.c.in_dir == str(base / "inputs")
    assert model.c.in_file_two == str(base / "inputs" / "in_file_two.csv")


def test_interpolation_and_multiline_values_in_the_ini(proxymod: ModuleType, base: Path) -> None:
    ini = write_ini(
        base / "interpolated.ini",
        f"""
        [PROJECT]
        runtime = 0
        failure = 0
        [INPUTS]
        in_dir = %(base)s/inputs
        in_file_one = %(stem)s_one.csv
        in_file_two = \'\'\'in_file_two.csv\'\'\'
        base = {base}
        [[DEFAULT]]
        stem = in_file
        [OUTPUTS]
        out_dir = "{base}/outputs, with a comma"
        """,
    )
    model = proxymod.Prox(str(ini), "m", target_yr=2015)
    model.close()
    assert model.c.in_dir == f"{base}/inputs"
    assert model.c.in_file_one == f"{base}/inputs/in_file_one.csv"
    assert model.c.out_dir == os.path.join(f"{base}/outputs, with a comma", "m_outputs")


def test_a_list_where_one_value_belongs_is_explained(proxymod: ModuleType, base: Path) -> None:
    ini = standard_ini(base)
    ini.write_text(ini.read_text().replace("in_file_one.csv", "a.csv, b.csv"))
    with pytest.raises(ValueError, match=r"\[INPUTS\] in_file_one is a list \(a\.csv, b\.csv\)"):
        proxymod.Prox(str(ini), "m", target_yr=2010)


# ----------------------------------------------------------------------------- bad configurations


def without_section(base: Path, section: str) -> Path:
    text = standard_ini(base).read_text()
    blocks = re.split(r"(?m)^(?=\[)", text)
    return write_ini(
        base / f"no_{section}.ini", "".join(b for b in blocks if not b.startswith(f"[{section}]"))
    )


@pytest.mark.parametrize("section", ["PROJECT", "INPUTS", "OUTPUTS"])
def test_missing_section_is_named(proxymod: ModuleType, base: Path, section: str) -> None:
    ini = without_section(base, section)
    with pytest.raises(ValueError, match=rf"missing section \[{section}\]") as raised:
        proxymod.Prox(str(ini), "m", target_yr=2010)
    assert str(ini) in str(raised.value)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("runtime = 0\n", "runtime"),
        ("in_file_two = in_file_two.csv\n", "in_file_two"),
        ("out_dir = ", "out_dir"),
    ],
)
def test_missing_key_is_named(proxymod: ModuleType, base: Path, line: str, key: str) -> None:
    ini = standard_ini(base)
    text = ini.read_text()
    start = text.index(line)
    ini.write_text(text[:start] + text[text.index("\n", start) + 1 :])
    with pytest.raises(ValueError, match=rf"missing the key '{key}'"):
        proxymod.Prox(str(ini), "m", target_yr=2010)


def test_missing_input_directory(proxymod: ModuleType, base: Path) -> None:
    shutil.rmtree(base / "inputs")
    with pytest.raises(FileNotFoundError, match="in_dir: directory does not exist") as raised:
        proxymod.Prox(str(standard_ini(base)), "m", target_yr=2010)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, config_reader().MissingPathError)


def test_missing_input_file(proxymod: ModuleType, base: Path) -> None:
    (base / "inputs" / "in_file_two.csv").unlink()
    with pytest.raises(ValueError, match="in_file_two: file does not exist"):
        proxymod.Prox(str(standard_ini(base)), "m", target_yr=2010)


def test_missing_configuration_file(proxymod: ModuleType, base: Path) -> None:
    with pytest.raises(FileNotFoundError, match="configuration file does not exist"):
        proxymod.Prox(str(base / "absent.ini"), "m", target_yr=2010)


@pytest.mark.parametrize(
    "text",
    [
        "[PROJECT]\nruntime = 0\nruntime = 1\n",  # a key twice
        "[PROJECT]\n[PROJECT]\n",  # a section twice
        "; a comment as configparser writes it\n[PROJECT]\n",  # not a comment to proxymod
        "[PROJECT]\nruntime = '0\n",  # a quote never closed
        "[PROJECT]\nin_dir = a,,b\n",  # an empty list item
        "[PROJECT]\n[[[deep]]]\n",  # nested two levels at once
    ],
)
def test_malformed_ini(proxymod: ModuleType, base: Path, text: str) -> None:
    ini = base / "bad.ini"
    ini.write_text(text)
    with pytest.raises(ValueError, match="not a valid INI file"):
        proxymod.Prox(str(ini), "m", target_yr=2010)


def test_model_name_with_a_slash(proxymod: ModuleType, base: Path) -> None:
    # the original crashes creating its log file in a folder that does not exist
    with pytest.raises(ValueError, match="model_name must not contain '/'"):
        proxymod.Prox(str(standard_ini(base)), "a/b", target_yr=2010)


@pytest.mark.parametrize(
    ("name", "folder"), [("", "_outputs"), (7, "7_outputs"), (None, "None_outputs")]
)
def test_any_model_name_the_original_formats(
    proxymod: ModuleType, base: Path, name: object, folder: str
) -> None:
    model = proxymod.Prox(str(standard_ini(base)), name, target_yr=2010)
    model.advance()
    model.close()
    assert model.out_file_1 == os.path.join(base, "outputs", folder, f"output1_{name}_2010.csv")


def test_a_path_object_is_refused_as_the_original_refuses_it(
    proxymod: ModuleType, base: Path
) -> None:
    with pytest.raises(ValueError, match="must be either 'str' or 'dict', got PosixPath"):
        proxymod.Prox(
            str(standard_ini(base)), "m", target_yr=2010, in_one=base / "inputs" / "in_file_one.csv"
        )
    with pytest.raises(ValueError, match="config must be the path of an INI file as a str"):
        proxymod.Prox(standard_ini(base), "m", target_yr=2010)


# ----------------------------------------------------------------------------- public names


def test_the_original_public_names(proxymod: ModuleType, base: Path) -> None:
    package = sys.modules["proxymod"]

    def public(thing: object) -> list[str]:
        return sorted(name for name in dir(thing) if not name.startswith("_"))

    assert public(package) == [
        "Prox", "ReadConfig", "config_reader", "logger", "math", "model", "time",
    ]  # fmt: skip
    assert package.__all__ == ["model"]
    assert proxymod.__all__ == ["Prox", "ReadConfig", "logger", "math", "time"]
    assert public(package.logger) == [
        "datetime", "kill_log", "loggers", "logging", "make_log", "sys",
    ]  # fmt: skip
    model = proxymod.Prox(str(standard_ini(base)), "m", target_yr=2015)
    assert public(model) == [
        "advance", "build_output", "c", "close", "end_year", "idx", "log", "log_config",
        "modify", "out_file_1", "out_file_2", "param_1", "param_2", "prepare", "read_csv",
        "read_data", "set_yr", "set_yr_range", "start_year", "step", "target_yr", "yr_range",
    ]  # fmt: skip
    assert public(model.c) == [
        "check_dir", "check_file", "failure", "in_dir", "in_file_one", "in_file_two", "log",
        "make_ifnot", "model_name", "out_dir", "out_file_one", "out_file_two", "parse_args",
        "runtime", "valid_range",
    ]  # fmt: skip
    assert type(model.c) is package.config_reader.ReadConfig
    assert model.c.out_file_one == os.path.join(base, "outputs", "m_outputs", "output1_{}_{}.csv")
    assert (model.yr_range, model.idx, model.set_yr) == ([2015], 0, 0)
    model.advance()
    assert (model.idx, model.set_yr) == (0, 2015)  # a target year never moves idx
    model.close()
    ranged = proxymod.Prox(str(standard_ini(base)), "r", start_yr="2010", end_yr=2020.0, step=5)
    assert ranged.yr_range == range(2010, 2025, 5)
    ranged.advance()
    ranged.advance()
    assert (ranged.idx, ranged.set_yr) == (1, 2015)
    ranged.close()


def test_read_csv_and_build_output_are_static(proxymod: ModuleType, base: Path) -> None:
    values = proxymod.Prox.read_csv(str(base / "inputs" / "in_file_two.csv"), range(2010, 2030, 10))
    assert values == {"2010": 123.456, "2020": 0.0}
    proxymod.Prox.build_output(str(base / "direct.csv"), {"2010": 1.5, 2011: 2, "x": "y"})
    assert (base / "direct.csv").read_bytes() == b"year,value\n2010,1.5\n2011,2\nx,y\n"


# ----------------------------------------------------------------------------- in a subprocess


def run_model_function(
    work: Path, module: str, function: str, configs: list[str], *extra_paths: Path
) -> subprocess.CompletedProcess[str]:
    """Import ``module`` and call ``function(*configs)`` in a fresh interpreter in ``work``."""
    call = f"import {module}; {module}.{function}(*{configs!r})"
    return subprocess.run(
        [sys.executable, "-c", call],
        cwd=work,
        env=model_env(*extra_paths),
        capture_output=True,
        text=True,
        check=False,
    )


def test_model_file_in_a_subprocess(base: Path) -> None:
    models = base / "models"
    models.mkdir()
    (models / "one_model.py").write_text(
        "from proxymod.model import Prox\n\n\n"
        "def one_model(config):\n"
        "    model = Prox(config, 'solo', start_yr=2010, end_yr=2020, step=5)\n"
        "    for _ in range(3):\n"
        "        model.advance()\n"
        "    model.close()\n"
    )
    standard_ini(base, name="config_1.ini")
    result = run_model_function(base, "one_model", "one_model", ["config_1.ini"], models)
    assert result.returncode == 0, result.stderr
    out_dir = base / "outputs" / "solo_outputs"
    kept = [(y, math.sqrt(v)) for y, v in INPUT_ONE if 2010 <= int(y) <= 2020]
    assert (out_dir / "output1_solo_2010_2020.csv").read_bytes() == csv_bytes(kept)
    assert log_records(result.stdout)[0][2] == "Starting solo"


def test_failing_model_in_a_subprocess(base: Path) -> None:
    standard_ini(base, name="config_1.ini", failure="1")
    call = "from proxymod.model import Prox; Prox('config_1.ini', 'x', target_yr=2010)"
    result = subprocess.run(
        [sys.executable, "-c", call], cwd=base, env=model_env(), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "RuntimeError: You raised an error on purpose." in result.stderr


def example_inputs() -> dict[str, dict[str, float]]:
    """The example input CSVs, read here by the test's own parser."""
    values: dict[str, dict[str, float]] = {}
    for name in ("in_file_one.csv", "in_file_two.csv"):
        lines = (EXAMPLE_DATA / "inputs" / name).read_text().splitlines()
        assert lines[0] == "year,value"
        values[name] = {year: float(value) for year, value in (ln.split(",") for ln in lines[1:])}
    return values


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three example models run as the dispatcher runs them, with three configs."""
    work = tmp_path_factory.mktemp("examples")
    shutil.copytree(EXAMPLE_DATA / "inputs", work / "inputs")
    configs = []
    for number in (1, 2, 3):
        write_ini(
            work / f"config_{number}.ini",
            """
            [PROJECT]
            runtime = 0
            failure = 0
            [INPUTS]
            in_dir = inputs
            in_file_one = in_file_one.csv
            in_file_two = in_file_two.csv
            [OUTPUTS]
            out_dir = outputs
            """,
        )
        configs.append(f"config_{number}.ini")
    results = {}
    for pattern in ("loose_coupling", "tight_coupling", "tight_coupling_twoway"):
        results[pattern] = run_model_function(
            work, pattern, pattern, configs, EXAMPLE_DATA / "models"
        )
    return {"outputs": work / "outputs", "results": results}


def test_example_models_exit_cleanly_and_log(example_run: dict[str, Any]) -> None:
    runs_per_pattern = {"loose_coupling": 3, "tight_coupling": 12, "tight_coupling_twoway": 24}
    for pattern, runs in runs_per_pattern.items():
        result = example_run["results"][pattern]
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        messages = [message for _, _, message in log_records(result.stdout)]
        assert sum(message.startswith("Starting ") for message in messages) == runs
        assert sum(message.startswith("Completed ") for message in messages) == runs


def test_example_models_output_tree(example_run: dict[str, Any]) -> None:
    outputs: Path = example_run["outputs"]
    expected_dirs = {
        f"{pattern}_model_{number}_outputs"
        for pattern in ("loose_coupling", "tight_coupling", "tight_coupling_twoway")
        for number in (1, 2, 3)
    }
    assert {path.name for path in outputs.iterdir()} == expected_dirs
    for directory in outputs.iterdir():
        model = directory.name.removesuffix("_outputs")
        yrs = ["2010_2100"] if model.startswith("loose") else ["2010", "2015", "2020", "2025"]
        csvs = {f"output{n}_{model}_{y}.csv" for n in (1, 2) for y in yrs}
        names = {path.name for path in directory.iterdir()}
        logs = names - csvs
        assert csvs <= names
        assert logs, f"no log in {directory}"
        assert all(re.fullmatch(rf"{re.escape(model)}_{STAMP}\.log", name) for name in logs)


def test_example_loose_coupling_values(example_run: dict[str, Any]) -> None:
    inputs = example_inputs()
    outputs: Path = example_run["outputs"]
    for number in (1, 2, 3):
        model = f"loose_coupling_model_{number}"
        for out, name in ((1, "in_file_one.csv"), (2, "in_file_two.csv")):
            rows = [(year, sqrt_n(value, number)) for year, value in inputs[name].items()]
            assert len(rows) == 19
            path = outputs / f"{model}_outputs" / f"output{out}_{model}_2010_2100.csv"
            assert path.read_bytes() == csv_bytes(rows)


@pytest.mark.parametrize(
    ("pattern", "roots"),
    [
        # model number -> (square roots of input one, of input two) in its final outputs
        ("tight_coupling", {1: (1, 1), 2: (2, 2), 3: (3, 3)}),
        # second pass: model 1 reads model 2's output 1 (2 roots) and model 3's output 2 (3 roots)
        ("tight_coupling_twoway", {1: (3, 4), 2: (4, 5), 3: (5, 6)}),
    ],
)
def test_example_tight_coupling_values(
    example_run: dict[str, Any], pattern: str, roots: dict[int, tuple[int, int]]
) -> None:
    inputs = example_inputs()
    outputs: Path = example_run["outputs"]
    for number, (roots_one, roots_two) in roots.items():
        model = f"{pattern}_model_{number}"
        for year in ("2010", "2015", "2020", "2025"):
            one = inputs["in_file_one.csv"][year]
            two = inputs["in_file_two.csv"][year]
            directory = outputs / f"{model}_outputs"
            assert (directory / f"output1_{model}_{year}.csv").read_bytes() == csv_bytes(
                [(year, sqrt_n(one, roots_one))]
            )
            assert (directory / f"output2_{model}_{year}.csv").read_bytes() == csv_bytes(
                [(year, sqrt_n(two, roots_two))]
            )


# ----------------------------------------------------------------------------- the original


@pytest.mark.skipif(
    not (os.environ.get("PROXYMOD_ORIGINAL") and os.environ.get("PROXYMOD_ORIGINAL_PYTHON")),
    reason="set PROXYMOD_ORIGINAL (a checkout of IMMM-SFA/proxymod) and PROXYMOD_ORIGINAL_PYTHON "
    "(an interpreter with configobj) to compare with the original",
)
def test_same_as_the_original() -> None:
    """Every scenario of scripts/compare_proxymod.py: same files and output where it succeeds."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_DIR / "scripts" / "compare_proxymod.py"),
            os.environ["PROXYMOD_ORIGINAL"],
            os.environ["PROXYMOD_ORIGINAL_PYTHON"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 different" in result.stdout
