"""Tests for problems.py: how a problem is said, and the nearest valid name."""

from __future__ import annotations

from pacifica.dispatcher_proxymod.problems import Problem, nearest, shown, texts


def test_a_problem_reads_as_one_line_with_its_correction() -> None:
    problem = Problem("proxymod.config_1.PROJECT.runtme", "unknown key", suggestion="runtime")
    assert (
        str(problem) == "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?"
    )
    full = Problem("k", "missing", "PROJECT needs runtime", note="`x` is given")
    assert str(full) == "`k`: missing (PROJECT needs runtime); `x` is given"
    assert str(Problem("", "no where")) == "no where"
    assert texts([problem, "plain"]) == [str(problem), "plain"]


def test_nearest_prefers_a_case_difference_and_refuses_far_names() -> None:
    assert nearest("runtme", ["runtime", "failure"]) == "runtime"
    assert nearest("project", ["PROJECT", "INPUTS", "OUTPUTS"]) == "PROJECT"
    assert nearest("OUTPUT", ["PROJECT", "INPUTS", "OUTPUTS"]) == "OUTPUTS"
    assert nearest("colour", ["in_dir", "in_file_one", "in_file_two"]) is None
    assert nearest("runtime", ["runtime"]) is None
    assert nearest("x", []) is None


def test_names_from_events_that_could_break_the_line_are_quoted() -> None:
    assert shown("proxymod.task") == "`proxymod.task`"
    assert shown("a\nb") == "'a\\nb'"
    assert shown("a`b") == "'a`b'"
    assert "\n" not in str(Problem("evil\n[PROJECT]", "unknown key", suggestion="x\ny"))
    assert len(shown("k" * 5000)) < 300
