"""Every problem with one configuration's sections, keys and values, said for people."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ...paths import PathError, quote, safe_file_name, safe_relative_dir
from ...problems import Problem, nearest, shown
from .ini import ini_value_problem
from .schema import (
    MAX_NUMBER_DIGITS,
    MAX_PROBLEMS,
    MAX_RUNTIME_SECONDS,
    PLAIN_INTEGER,
    REQUIRED_SECTIONS,
    SCHEMA,
)


def sections_problems(
    prefix: str, sections: Mapping[str, object], given_for: dict[str, str] | None = None
) -> list[Problem]:
    """Every problem with one configuration's sections, keys and values."""
    given_for = {} if given_for is None else given_for
    problems: list[Problem] = []
    for section in sections:
        if section not in SCHEMA:
            expected = f"sections are {', '.join(SCHEMA)}"
            problems.append(
                _unknown(prefix, section, "section", SCHEMA, sections, expected, given_for)
            )
    for section in REQUIRED_SECTIONS:
        if section not in sections:
            needs = f"{section} needs {', '.join(SCHEMA[section])}"
            problems.append(missing(f"{prefix}.{section}", given_for, needs))
    for section, allowed in SCHEMA.items():
        values = sections.get(section)
        if values is None:
            continue
        where = f"{prefix}.{section}"
        if not isinstance(values, Mapping):
            problems.append(Problem(where, f"must be a mapping, not {type(values).__name__}"))
            continue
        for key in values:
            if key not in allowed:
                expected = f"{section} takes {', '.join(allowed)}"
                problems.append(_unknown(where, key, "key", allowed, values, expected, given_for))
        for key in allowed:
            if key not in values:
                needs = f"{section} needs {', '.join(allowed)}"
                problems.append(missing(f"{where}.{key}", given_for, needs))
        for key in allowed:
            if key in values:
                problem = _value_problem(f"{where}.{key}", key, values[key])
                if problem is not None:
                    problems.append(problem)
    return problems


def _unknown(
    where: str,
    name: str,
    kind: str,
    valid: Iterable[str],
    given: Iterable[object],
    expected: str,
    given_for: dict[str, str],
) -> Problem:
    """``name`` (a section or key) is not valid at ``where``; offer the nearest missing one."""
    fixed = nearest(name, [valid_name for valid_name in valid if valid_name not in given])
    if fixed is None:
        return Problem(f"{where}.{name}", f"unknown {kind}", expected)
    given_for.setdefault(f"{where}.{fixed}", f"{where}.{name}")
    return Problem(f"{where}.{name}", f"unknown {kind}", suggestion=fixed)


def _value_problem(where: str, key: str, value: object) -> Problem | None:
    """Check one value against the INI rules and its key's own rule."""
    problem = ini_value_problem(value)
    if problem is None:
        assert isinstance(value, str)  # ini_value_problem rejects everything else
        if key == "runtime":
            problem = _runtime_problem(value)
        elif key == "failure":
            problem = None if value in ("0", "1") else "must be 0 or 1"
        elif key in ("in_dir", "out_dir"):
            problem = _path_problem(lambda: safe_relative_dir(value, where))
        else:
            problem = _path_problem(lambda: safe_file_name(value, where))
    return None if problem is None else Problem(where, problem, f"given {quote(value)}")


def _runtime_problem(value: str) -> str | None:
    if PLAIN_INTEGER.fullmatch(value):
        if len(value) > MAX_NUMBER_DIGITS or int(value) > MAX_RUNTIME_SECONDS:
            return f"above the maximum of {MAX_RUNTIME_SECONDS} seconds"
        return None
    if value.startswith("-") and PLAIN_INTEGER.fullmatch(value[1:]):
        return "is negative (runtime is a number of seconds >= 0)"
    return (
        "not a whole number of seconds (ASCII digits only: no sign, point, exponent, "
        "spaces or leading zeros)"
    )


def _path_problem(check: Callable[[], object]) -> str | None:
    try:
        check()
    except PathError as error:
        return error.reason
    return None


def missing(where: str, given_for: Mapping[str, str], expected: str) -> Problem:
    """``where`` is missing; say so, and name the misspelling of it that was given, if any."""
    typo = given_for.get(where)
    note = None if typo is None else f"{shown(typo)} is given: is it misspelt?"
    return Problem(where, "missing", expected, note=note)


def capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]
