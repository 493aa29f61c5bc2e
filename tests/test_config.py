"""Tests for proxymod.config: key/values -> validated configs -> INI text."""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacifica.dispatcher_proxymod.errors import ConfigError, UnprocessableEvent
from pacifica.dispatcher_proxymod.proxymod.config import (
    MAX_PROBLEMS,
    MAX_RUNTIME_SECONDS,
    ProxymodConfig,
    parse_configs,
    render_ini,
)

MAX_CONFIGS = 10


def config_values(number: int, inputs: bool = True, **values: str) -> dict[str, str]:
    """The key/values of one valid config, with ``SECTION__key=value`` overrides."""
    defaults = {
        "PROJECT.runtime": "2",
        "PROJECT.failure": "0",
        "OUTPUTS.out_dir": "outputs",
    }
    if inputs:
        defaults |= {
            "INPUTS.in_dir": "inputs",
            "INPUTS.in_file_one": "in_file_one.csv",
            "INPUTS.in_file_two": "in_file_two.csv",
        }
    defaults |= {name.replace("__", "."): value for name, value in values.items()}
    return {f"proxymod.config_{number}.{name}": value for name, value in defaults.items()}


def event_values(count: int = 3) -> dict[str, str]:
    """Key/values as a valid event carries them, including keys this module ignores."""
    key_values = {
        "proxymod.task": "advance",
        "proxymod.version": "v0.0.1",
        "proxymod.configs_count": str(count),
        "Transactions._id": "67",
        "other.key": "\n[PROJECT]\nanything goes outside proxymod.*",
    }
    for number in range(1, count + 1):
        key_values |= config_values(number)
    return key_values


def problems_of(key_values: Mapping[str, str], max_configs: int = MAX_CONFIGS) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_configs(key_values, max_configs)
    assert isinstance(caught.value, UnprocessableEvent)
    return caught.value.problems


def assert_one_problem(key_values: Mapping[str, str], *fragments: str) -> str:
    problems = problems_of(key_values)
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0]
    return problems[0]


def read_back(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser()  # default interpolation, as a model's reader may use
    parser.read_string(text)
    return {section: dict(parser[section]) for section in parser.sections()}


# --- valid events ----------------------------------------------------------------------------


def test_parses_a_valid_event_in_number_order() -> None:
    key_values = dict(reversed(list(event_values(3).items())))
    configs = parse_configs(key_values, MAX_CONFIGS)
    assert [config.number for config in configs] == [1, 2, 3]
    first = configs[0]
    assert first.name == "config_1"
    assert first.runtime == 2
    assert first.failure == 0
    assert first.in_dir == PurePosixPath("inputs")
    assert first.in_file_one == "in_file_one.csv"
    assert first.in_file_two == "in_file_two.csv"
    assert first.out_dir == PurePosixPath("outputs")
    assert list(first.sections) == ["PROJECT", "INPUTS", "OUTPUTS"]
    assert list(first.sections["INPUTS"]) == ["in_dir", "in_file_one", "in_file_two"]


def test_inputs_section_is_optional() -> None:
    key_values = {"proxymod.configs_count": "1", **config_values(1, inputs=False)}
    (config,) = parse_configs(key_values, MAX_CONFIGS)
    assert config.in_dir is None
    assert config.in_file_one is None
    assert config.in_file_two is None
    assert "[INPUTS]" not in config.ini_text()


def test_values_are_kept_as_given_and_typed_accessors_normalise() -> None:
    key_values = {
        "proxymod.configs_count": "1",
        **config_values(
            1,
            PROJECT__runtime="0",
            PROJECT__failure="1",
            INPUTS__in_dir="data/in/",
            OUTPUTS__out_dir="./results/run",
        ),
    }
    (config,) = parse_configs(key_values, MAX_CONFIGS)
    assert config.runtime == 0
    assert config.failure == 1
    assert config.sections["INPUTS"]["in_dir"] == "data/in/"
    assert config.in_dir == PurePosixPath("data/in")
    assert config.out_dir == PurePosixPath("results/run")


def test_runtime_upper_bound_is_inclusive() -> None:
    key_values = {
        "proxymod.configs_count": "1",
        **config_values(1, PROJECT__runtime=str(MAX_RUNTIME_SECONDS)),
    }
    assert parse_configs(key_values, MAX_CONFIGS)[0].runtime == MAX_RUNTIME_SECONDS


def test_configs_count_may_equal_max_configs() -> None:
    assert len(parse_configs(event_values(MAX_CONFIGS), MAX_CONFIGS)) == MAX_CONFIGS


def test_config_is_immutable() -> None:
    (config,) = parse_configs(event_values(1), MAX_CONFIGS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.number = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.sections["PROJECT"]["runtime"] = "9"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.sections["EXTRA"] = {}  # type: ignore[index]


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ConfigError) as caught:
        ProxymodConfig(0, {"PROJECT": {"runtime": "1e3", "failure": "0"}})
    problems = caught.value.problems
    assert any("config number 0" in problem for problem in problems)
    assert any(problem.startswith("`proxymod.config_0.OUTPUTS`: missing") for problem in problems)
    assert any("runtime" in problem and "'1e3'" in problem for problem in problems)


# --- configs_count ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "fragment"),
    [
        ("0", "at least 1"),
        ("-1", "not a positive integer"),
        ("-99999999999", "not a positive integer"),
        ("3.0", "not a positive integer"),
        ("1e2", "not a positive integer"),
        (" 3", "not a positive integer"),
        ("03", "not a positive integer"),
        ("+3", "not a positive integer"),
        ("\u0663", "not a positive integer"),  # ARABIC-INDIC DIGIT THREE: int() would accept it
        ("__import__('os').getpid()", "not a positive integer"),
        ("11", "above the limit of 10"),
        ("9" * 5000, "above the limit of 10"),
    ],
)
def test_configs_count_must_be_a_bounded_positive_integer(count: str, fragment: str) -> None:
    key_values = event_values(1) | {"proxymod.configs_count": count}
    problems = problems_of(key_values)
    assert problems[0].startswith("`proxymod.configs_count`: ")
    assert fragment in problems[0]


def test_configs_count_missing() -> None:
    key_values = event_values(1)
    del key_values["proxymod.configs_count"]
    assert_one_problem(key_values, "`proxymod.configs_count`: missing (the number of configs")


def test_misspelt_count_is_named_with_its_correction() -> None:
    key_values = event_values(1)
    key_values["proxymod.config_count"] = key_values.pop("proxymod.configs_count")
    assert problems_of(key_values) == [
        "`proxymod.configs_count`: missing (the number of configs, 1 to 10); "
        "`proxymod.config_count` is given: is it misspelt?",
        "`proxymod.config_count`: unknown proxymod key; did you mean `proxymod.configs_count`?",
    ]


def test_invalid_count_still_reports_problems_inside_configs() -> None:
    key_values = event_values(2) | {
        "proxymod.configs_count": "many",
        "proxymod.config_2.PROJECT.failure": "yes",
    }
    problems = problems_of(key_values)
    assert len(problems) == 2
    assert "configs_count" in problems[0]
    assert problems[1] == "`proxymod.config_2.PROJECT.failure`: must be 0 or 1 (given 'yes')"


def test_configs_above_max_are_rejected_even_without_a_count() -> None:
    key_values = event_values(1) | config_values(11)
    del key_values["proxymod.configs_count"]
    problems = problems_of(key_values)
    assert "`proxymod.config_11`: above the limit of 10 configs" in problems


# --- which configs are present ---------------------------------------------------------------


def test_missing_config_is_reported() -> None:
    key_values = {
        key: value
        for key, value in event_values(3).items()
        if not key.startswith("proxymod.config_2.")
    }
    assert_one_problem(
        key_values, "`proxymod.config_2`: missing (proxymod.configs_count is 3: configs 1 to 3)"
    )


def test_configs_beyond_count_are_rejected_not_passed_on() -> None:
    key_values = event_values(2) | config_values(3) | config_values(7)
    problems = problems_of(key_values)
    assert problems == [
        "`proxymod.config_3`: beyond proxymod.configs_count 2 "
        "(raise proxymod.configs_count to use it)",
        "`proxymod.config_7`: beyond proxymod.configs_count 2 "
        "(raise proxymod.configs_count to use it)",
    ]


# --- structure -------------------------------------------------------------------------------


def test_unknown_section_and_key() -> None:
    key_values = event_values(1) | {
        "proxymod.config_1.EXTRA.x": "1",
        "proxymod.config_1.PROJECT.speed": "3",
        "proxymod.config_1.project.runtime": "3",
    }
    problems = problems_of(key_values)
    assert problems == [
        "`proxymod.config_1.EXTRA`: unknown section (sections are PROJECT, INPUTS, OUTPUTS)",
        "`proxymod.config_1.project`: unknown section (sections are PROJECT, INPUTS, OUTPUTS)",
        "`proxymod.config_1.PROJECT.speed`: unknown key (PROJECT takes runtime, failure)",
    ]


def test_misspelt_key_and_section_get_the_nearest_valid_name() -> None:
    key_values = event_values(1)
    key_values["proxymod.config_1.PROJECT.runtme"] = key_values.pop(
        "proxymod.config_1.PROJECT.runtime"
    )
    key_values["proxymod.config_1.OUTPUT.out_dir"] = key_values.pop(
        "proxymod.config_1.OUTPUTS.out_dir"
    )
    key_values["proxymod.confg_2.PROJECT.runtime"] = "1"
    assert problems_of(key_values) == [
        "`proxymod.confg_2.PROJECT.runtime`: unknown proxymod key; "
        "did you mean `proxymod.config_2.PROJECT.runtime`?",
        "`proxymod.config_1.OUTPUT`: unknown section; did you mean `OUTPUTS`?",
        "`proxymod.config_1.OUTPUTS`: missing (OUTPUTS needs out_dir); "
        "`proxymod.config_1.OUTPUT` is given: is it misspelt?",
        "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?",
        "`proxymod.config_1.PROJECT.runtime`: missing (PROJECT needs runtime, failure); "
        "`proxymod.config_1.PROJECT.runtme` is given: is it misspelt?",
    ]


def test_a_section_in_the_wrong_case_is_corrected() -> None:
    key_values = event_values(1)
    for key in [key for key in key_values if ".PROJECT." in key]:
        key_values[key.replace(".PROJECT.", ".project.")] = key_values.pop(key)
    problems = problems_of(key_values)
    assert problems[0] == "`proxymod.config_1.project`: unknown section; did you mean `PROJECT`?"
    assert "`proxymod.config_1.project` is given: is it misspelt?" in problems[1]


@pytest.mark.parametrize("section", ["PROJECT", "OUTPUTS"])
def test_required_sections(section: str) -> None:
    key_values = {
        key: value
        for key, value in event_values(1).items()
        if not key.startswith(f"proxymod.config_1.{section}.")
    }
    assert_one_problem(key_values, f"`proxymod.config_1.{section}`: missing ({section} needs")


@pytest.mark.parametrize(
    ("key", "missing"),
    [
        ("proxymod.config_1.PROJECT.runtime", "PROJECT needs runtime, failure"),
        ("proxymod.config_1.PROJECT.failure", "PROJECT needs runtime, failure"),
        ("proxymod.config_1.INPUTS.in_file_two", "INPUTS needs in_dir, in_file_one, in_file_two"),
        ("proxymod.config_1.INPUTS.in_dir", "INPUTS needs in_dir, in_file_one, in_file_two"),
    ],
)
def test_present_section_needs_all_its_keys(key: str, missing: str) -> None:
    key_values = event_values(1)
    del key_values[key]
    assert assert_one_problem(key_values) == f"`{key}`: missing ({missing})"


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("proxymod.config_x.PROJECT.runtime", "config number 'x'"),
        ("proxymod.config_01.PROJECT.runtime", "config number '01'"),
        ("proxymod.config_0.PROJECT.runtime", "config number '0'"),
        ("proxymod.config_-1.PROJECT.runtime", "config number '-1'"),
        ("proxymod.config_.PROJECT.runtime", "config number ''"),
        ("proxymod.config_1.PROJECT.runtime.extra", "exactly three dots"),
        ("proxymod.config_1.PROJECT", "exactly three dots"),
        ("proxymod.config_1", "exactly three dots"),
        ("proxymod.config_1..runtime", "exactly three dots"),
        ("proxymod.config_1.PROJECT.", "exactly three dots"),
        ("proxymod.config_" + "1" * 40 + ".PROJECT.runtime", "too large"),
        ("proxymod.configs_total", "unknown proxymod key"),
        ("proxymod.", "unknown proxymod key"),
        ("Proxymod.config_1.PROJECT.runtime", "in lower case"),
    ],
)
def test_malformed_keys(key: str, fragment: str) -> None:
    problem = assert_one_problem(event_values(1) | {key: "1"}, fragment)
    assert problem.startswith(f"`{key}`: ")


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "fragment"),
    [
        ("2.5", "not a whole number"),
        ("1e3", "not a whole number"),
        (" 2", "whitespace"),
        ("2 ", "whitespace"),
        ("", "not a whole number"),
        ("02", "not a whole number"),
        ("+2", "not a whole number"),
        ("0x10", "not a whole number"),
        ("\u0662", "not a whole number"),
        ("-1", "negative"),
        ("-0", "negative"),
        ("86401", f"above the maximum of {MAX_RUNTIME_SECONDS}"),
        ("9" * 5000, "longer than"),
        ("9" * 4000, "above the maximum"),
        ("None", "not a whole number"),
        ("__import__('os').system('id')", "not a whole number"),
    ],
)
def test_runtime_must_be_a_plain_bounded_integer(runtime: str, fragment: str) -> None:
    key_values = event_values(1) | {"proxymod.config_1.PROJECT.runtime": runtime}
    problem = assert_one_problem(key_values, fragment)
    assert problem.startswith("`proxymod.config_1.PROJECT.runtime`: ")
    assert problem.endswith(f"(given {runtime!r})") or "characters)" in problem


def test_eval_payload_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch() or 1"
    key_values = event_values(1) | {
        "proxymod.configs_count": payload,
        "proxymod.config_1.PROJECT.runtime": payload,
        "proxymod.config_1.PROJECT.failure": payload,
    }
    assert len(problems_of(key_values)) == 3
    assert not marker.exists()


@pytest.mark.parametrize("failure", ["2", "-1", "true", "", "00", "1.0", "True"])
def test_failure_must_be_zero_or_one(failure: str) -> None:
    key_values = event_values(1) | {"proxymod.config_1.PROJECT.failure": failure}
    assert_one_problem(key_values, "proxymod.config_1.PROJECT.failure")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("INPUTS.in_dir", "../../etc", "'..'"),
        ("INPUTS.in_dir", "inputs/../../..", "'..'"),
        ("INPUTS.in_dir", "/etc", "absolute"),
        ("OUTPUTS.out_dir", "/tmp/anywhere", "absolute"),
        ("OUTPUTS.out_dir", "../../home/user/.ssh", "'..'"),
        ("OUTPUTS.out_dir", "C:/Windows", "drive letter"),
        ("OUTPUTS.out_dir", "out\\..\\..", "backslash"),
        ("INPUTS.in_file_one", "../secret.csv", "'/'"),
        ("INPUTS.in_file_one", "/etc/passwd", "'/'"),
        ("INPUTS.in_file_two", "..", "not a file name"),
        ("INPUTS.in_file_two", "", "empty"),
    ],
)
def test_paths_must_stay_inside(key: str, value: str, fragment: str) -> None:
    full_key = f"proxymod.config_1.{key}"
    problem = assert_one_problem(event_values(1) | {full_key: value}, fragment)
    assert problem.startswith(f"`{full_key}`: ")
    assert problem.endswith(f" (given {value!r})")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("INPUTS.in_dir", "inputs\n[PROJECT]\nx=1", "U+000A"),
        ("OUTPUTS.out_dir", "outputs\r\n[EVIL]", "U+000D"),
        ("PROJECT.runtime", "2\nfailure = 1", "U+000A"),
        ("INPUTS.in_file_one", "a.csv\x00", "U+0000"),
        ("INPUTS.in_file_one", "a\u2028b.csv", "U+2028"),
        ("INPUTS.in_file_one", "a\x0bb.csv", "U+000B"),
        ("INPUTS.in_dir", "[PROJECT]", "starts with '['"),
        ("INPUTS.in_dir", "#inputs", "comment"),
        ("INPUTS.in_dir", ";inputs", "comment"),
        ("INPUTS.in_file_one", "a #b.csv", "comment"),
        ("INPUTS.in_file_one", "a\t;b.csv", "U+0009"),
        ("INPUTS.in_file_one", "a ;b.csv", "comment"),
        ("OUTPUTS.out_dir", "out%(here)s", "interpolation"),
        ("OUTPUTS.out_dir", " outputs", "whitespace"),
        ("OUTPUTS.out_dir", "outputs\u3000", "whitespace"),
    ],
)
def test_values_that_would_change_the_ini_are_rejected(key: str, value: str, fragment: str) -> None:
    problem = assert_one_problem(event_values(1) | {f"proxymod.config_1.{key}": value}, fragment)
    assert "\n" not in problem
    assert "\r" not in problem


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("INPUTS.in_dir", "run#1/in;put"),
        ("INPUTS.in_dir", "data[2020]"),
        ("INPUTS.in_file_one", "a=b.csv"),
        ("INPUTS.in_file_one", "é ü 日本.csv"),
        ("OUTPUTS.out_dir", "out: put"),
        ("OUTPUTS.out_dir", ""),
    ],
)
def test_harmless_punctuation_is_kept_exactly(key: str, value: str) -> None:
    (config,) = parse_configs(event_values(1) | {f"proxymod.config_1.{key}": value}, MAX_CONFIGS)
    section, name = key.split(".")
    assert read_back(config.ini_text())[section][name] == value


def test_non_text_values_are_problems_not_crashes() -> None:
    key_values: dict[Any, Any] = dict(event_values(1))
    key_values["proxymod.config_1.PROJECT.runtime"] = 2
    key_values[3] = "x"
    problems = problems_of(key_values)
    assert "`proxymod.config_1.PROJECT.runtime`: must be text, not int (given 2)" in problems
    assert "`3`: a key must be text, not int" in problems


# --- all at once -----------------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    key_values = event_values(4) | {
        "proxymod.configs_count": "3",
        "proxymod.config_1.PROJECT.runtime": "__import__('os')",
        "proxymod.config_1.OUTPUTS.out_dir": "/etc",
        "proxymod.config_2.INPUTS.in_dir": "inputs\n[PROJECT]\nx=1",
        "proxymod.config_2.INPUTS.colour": "red",
        "proxymod.config_01.PROJECT.runtime": "1",
    }
    for key in list(key_values):
        if key.startswith("proxymod.config_3."):
            del key_values[key]
    problems = problems_of(key_values)
    expected_fragments = [
        "`proxymod.config_01.PROJECT.runtime`: config number '01'",
        "`proxymod.config_1.PROJECT.runtime`: not a whole number",
        "`proxymod.config_1.OUTPUTS.out_dir`: is an absolute path",
        "`proxymod.config_2.INPUTS.colour`: unknown key",
        "`proxymod.config_2.INPUTS.in_dir`: contains the forbidden character U+000A",
        "`proxymod.config_3`: missing",
        "`proxymod.config_4`: beyond proxymod.configs_count 3",
    ]
    assert len(problems) == len(expected_fragments), problems
    for fragment, problem in zip(expected_fragments, problems, strict=True):
        assert problem.startswith(fragment), (fragment, problem)


def test_problem_list_is_capped() -> None:
    key_values = event_values(1) | {f"proxymod.junk_{index}": "1" for index in range(500)}
    problems = problems_of(key_values)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == f"... and {500 - MAX_PROBLEMS} more problems"


def test_max_configs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_configs"):
        parse_configs(event_values(1), 0)


# --- INI rendering ---------------------------------------------------------------------------


def test_ini_text_layout() -> None:
    (config,) = parse_configs(event_values(1), MAX_CONFIGS)
    assert config.ini_text() == (
        "[PROJECT]\n"
        "runtime = 2\n"
        "failure = 0\n"
        "[INPUTS]\n"
        "in_dir = inputs\n"
        "in_file_one = in_file_one.csv\n"
        "in_file_two = in_file_two.csv\n"
        "[OUTPUTS]\n"
        "out_dir = outputs\n"
    )


def test_ini_text_round_trips() -> None:
    for config in parse_configs(event_values(3), MAX_CONFIGS):
        assert read_back(config.ini_text()) == {
            section: dict(values) for section, values in config.sections.items()
        }


def test_absolute_ini_text(tmp_path: Path) -> None:
    key_values = event_values(1) | {"proxymod.config_1.OUTPUTS.out_dir": "./results/a/"}
    (config,) = parse_configs(key_values, MAX_CONFIGS)
    inputs_dir = tmp_path / "files" / "inputs"
    outputs_dir = tmp_path / "result"
    values = read_back(config.absolute_ini_text(inputs_dir, outputs_dir))
    assert values["INPUTS"]["in_dir"] == str(inputs_dir)
    assert values["OUTPUTS"]["out_dir"] == str(outputs_dir / "results" / "a")
    assert values["INPUTS"]["in_file_one"] == "in_file_one.csv"
    assert values["PROJECT"] == {"runtime": "2", "failure": "0"}
    assert config.sections["OUTPUTS"]["out_dir"] == "./results/a/"  # the original is untouched


def test_absolute_ini_text_without_inputs_and_with_top_level_outputs(tmp_path: Path) -> None:
    key_values = {
        "proxymod.configs_count": "1",
        **config_values(1, inputs=False, OUTPUTS__out_dir=""),
    }
    (config,) = parse_configs(key_values, MAX_CONFIGS)
    values = read_back(config.absolute_ini_text(tmp_path / "in", tmp_path / "out"))
    assert "INPUTS" not in values
    assert values["OUTPUTS"]["out_dir"] == str(tmp_path / "out")


def test_absolute_ini_text_needs_absolute_directories(tmp_path: Path) -> None:
    (config,) = parse_configs(event_values(1), MAX_CONFIGS)
    with pytest.raises(ValueError, match="inputs_dir must be absolute"):
        config.absolute_ini_text(Path("inputs"), tmp_path)
    with pytest.raises(ValueError, match="outputs_dir must be absolute"):
        config.absolute_ini_text(tmp_path, Path("outputs"))
    with pytest.raises(ValueError, match="interpolation"):
        config.absolute_ini_text(tmp_path / "100%", tmp_path)


@pytest.mark.parametrize(
    "sections",
    [
        {"DEFAULT": {"a": "1"}},
        {"A B": {"a": "1"}},
        {"A]\n[B": {"a": "1"}},
        {"A": {"Key": "1"}},
        {"A": {"a = 1\nb": "1"}},
        {"A": {"a": "1\n[B]"}},
        {"A": {"a": " 1"}},
    ],
)
def test_render_ini_refuses_what_would_not_read_back(sections: dict[str, dict[str, str]]) -> None:
    with pytest.raises(ValueError, match="cannot write"):
        render_ini(sections)


def test_render_ini_of_nothing_is_empty() -> None:
    assert render_ini({}) == ""


# --- properties ------------------------------------------------------------------------------

_NASTY_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "0",
            "1",
            "2",
            "86400",
            "86401",
            "-1",
            "2.5",
            "1e3",
            " 2",
            "inputs",
            "outputs",
            "a.csv",
            "../x",
            "/etc",
            "..",
            "C:",
            "a\\b",
            "x\n[PROJECT]\nruntime=1",
            "%(x)s",
            "[A]",
            "# c",
            "a ;b",
            "__import__('os').system('true')",
            "",
            "9" * 5000,
        ]
    ),
)
_SECTIONS = st.sampled_from(["PROJECT", "INPUTS", "OUTPUTS", "EXTRA", "project", ""])
_NAMES = st.sampled_from(
    ["runtime", "failure", "in_dir", "in_file_one", "in_file_two", "out_dir", "x", ""]
)
_NUMBERS = st.sampled_from(["1", "2", "3", "0", "01", "x", "99999999999", ""])
_KEYS = st.one_of(
    st.builds(
        lambda number, section, name: f"proxymod.config_{number}.{section}.{name}",
        _NUMBERS,
        _SECTIONS,
        _NAMES,
    ),
    st.sampled_from(
        ["proxymod.configs_count", "proxymod.task", "proxymod.version", "proxymod.x", "other"]
    ),
    st.text(max_size=40),
    st.text(max_size=20).map(lambda tail: "proxymod." + tail),
)


@settings(deadline=None)  # no timing assertions on a loaded machine
@given(key_values=st.dictionaries(_KEYS, _NASTY_TEXT, max_size=25))
def test_property_any_mapping_gives_configs_or_config_error(
    key_values: dict[str, str],
) -> None:
    try:
        configs = parse_configs(key_values, 3)
    except ConfigError as error:
        assert error.problems
        assert all("\n" not in problem and "\r" not in problem for problem in error.problems)
        return
    assert [config.number for config in configs] == list(
        range(1, int(key_values["proxymod.configs_count"]) + 1)
    )
    for config in configs:
        assert 0 <= config.runtime <= MAX_RUNTIME_SECONDS
        assert config.failure in (0, 1)
        assert read_back(config.ini_text()) == {
            section: dict(values) for section, values in config.sections.items()
        }
        assert ".." not in config.out_dir.parts and not config.out_dir.is_absolute()


_GOOD_DIR = st.lists(
    st.text(
        alphabet=st.characters(
            exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Cf"),
            exclude_characters="/\\%#;[.:",
        ),
        min_size=1,
        max_size=8,
    ),
    max_size=4,
).map("/".join)
_GOOD_NAME = st.text(
    alphabet=st.characters(
        exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Cf"),
        exclude_characters="/\\%#;[:",
    ),
    min_size=1,
    max_size=20,
).filter(lambda name: name.strip(".") != "")


@st.composite
def _valid_event(draw: st.DrawFn) -> dict[str, str]:
    count = draw(st.integers(1, 4))
    key_values = {"proxymod.configs_count": str(count)}
    for number in range(1, count + 1):
        key_values |= config_values(
            number,
            inputs=draw(st.booleans()),
            PROJECT__runtime=str(draw(st.integers(0, MAX_RUNTIME_SECONDS))),
            PROJECT__failure=draw(st.sampled_from(["0", "1"])),
            INPUTS__in_dir=draw(_GOOD_DIR),
            INPUTS__in_file_one=draw(_GOOD_NAME),
            INPUTS__in_file_two=draw(_GOOD_NAME),
            OUTPUTS__out_dir=draw(_GOOD_DIR),
        )
    return key_values


@settings(deadline=None)  # no timing assertions on a loaded machine
@given(key_values=_valid_event())
def test_property_valid_events_round_trip_exactly(key_values: dict[str, str]) -> None:
    configs = parse_configs(key_values, 4)
    assert len(configs) == int(key_values["proxymod.configs_count"])
    for config in configs:
        values = read_back(config.ini_text())
        for section, keys in values.items():
            for name, value in keys.items():
                assert key_values[f"proxymod.config_{config.number}.{section}.{name}"] == value
        absolute = read_back(config.absolute_ini_text(Path("/srv/in"), Path("/srv/out")))
        out_dir = Path(absolute["OUTPUTS"]["out_dir"])
        assert out_dir == Path("/srv/out") or Path("/srv/out") in out_dir.parents
