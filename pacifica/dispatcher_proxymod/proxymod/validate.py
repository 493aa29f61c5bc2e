"""Every problem of an event as a proxymod request, found at once, as the worker finds them.

The route (:mod:`..routing`), the configs (:mod:`.config`) and the file selection
(:mod:`.files`) each check a part; :func:`request_problems` runs them all and drops what two
of them would say twice (a missing config key is said by the configs' check, which knows
the misspelling beside it). The web process, the worker, ``process`` and ``check`` all use it,
so an upload is refused for the same reasons wherever it is checked.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UnprocessableEvent
from ..events import Event, parse_upload
from ..problems import Problem, texts
from ..settings import Settings
from . import routing
from .config import config_problems, parse_configs
from .files import Selection, file_problems


def request_problems(event: Event, settings: Settings) -> list[Problem]:
    """Every problem with ``event`` as a proxymod request; empty when it may run."""
    routed = routing.mismatch_problems(event, settings)
    problems = [problem for kind, problem in routed if kind == routing.EVENT]
    try:
        upload = parse_upload(event.data)
    except UnprocessableEvent as exc:
        if not problems:  # data is a list, but an entry is malformed
            problems.extend(Problem("", text) for text in exc.problems)
        problems.extend(problem for kind, problem in routed if kind != routing.EVENT)
        return problems
    found = config_problems(upload.key_values, settings.max_configs)
    problems.extend(
        problem for kind, problem in routed if kind == routing.KEY and not _said(problem, found)
    )
    problems.extend(found)
    if found:  # without valid configs the files cannot be chosen; the route's checks say it
        problems.extend(problem for kind, problem in routed if kind == routing.FILE)
    else:
        configs = parse_configs(upload.key_values, settings.max_configs)
        problems.extend(file_problems(upload, configs, settings.max_files)[1])
    return problems


def rejection_reasons(event: Event, settings: Settings) -> list[str]:
    """Why ``event`` will not run, one line per problem; empty when it matches the route."""
    problems = texts(request_problems(event, settings))
    if not problems and routing.match(event, settings) is None:
        problems = [routing.NO_MATCH]
    return problems


def selection(event: Event, settings: Settings) -> Selection:
    """The files a valid request uses (raises UnprocessableEvent for an invalid one)."""
    upload = parse_upload(event.data)
    configs = parse_configs(upload.key_values, settings.max_configs)
    chosen, problems = file_problems(upload, configs, settings.max_files)
    if problems:
        raise UnprocessableEvent(texts(problems))
    return chosen


def _said(problem: Problem, others: Sequence[Problem]) -> bool:
    """Whether one of ``others`` is about ``problem``'s key or a section or config holding it."""
    return any(
        other.where
        and (problem.where == other.where or problem.where.startswith(other.where + "."))
        for other in others
    )
