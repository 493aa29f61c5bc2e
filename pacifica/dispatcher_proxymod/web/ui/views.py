"""What the dashboard's pages show, built from the task store: plain data for the templates.

Nothing here escapes or formats HTML (the templates do, with autoescape on); everything here
reads the store leniently, because a rejected event may hold anything.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ... import store
from ...modellog import ModelLog
from ...states import TaskState

#: Longest one-line reason shown in the list.
REASON_CHARS = 240
#: The states in the order the counts show them.
STATE_ORDER = (
    TaskState.WAITING,
    TaskState.RUNNING,
    TaskState.SUCCEEDED,
    TaskState.REJECTED,
    TaskState.FAILED,
    TaskState.CANCELLED,
)


def state_of(task: store.Task) -> TaskState:
    """The task's state in words (an unknown status reads as failed)."""
    try:
        return task.state
    except ValueError:
        return TaskState.FAILED


def one_line(text: str | None, limit: int = REASON_CHARS) -> str:
    """The first line of ``text``, at most ``limit`` characters."""
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def reason_of(task: store.Task) -> str:
    """The one-line reason of a task that did not succeed, or ""."""
    reason = task.reason or task.error_message
    return one_line(reason) if state_of(task) is not TaskState.SUCCEEDED else ""


def duration_text(seconds: float | None) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 4 min``; "" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def time_text(value: datetime | None) -> str:
    """A stored (naive UTC) time as people read it."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


@dataclass(frozen=True)
class UploadFacts:
    """What the event's ``data[]`` says about the upload, read leniently."""

    transaction: str = ""
    submitter: str = ""
    project: str = ""
    instrument: str = ""
    key_values: tuple[tuple[str, str], ...] = ()
    files: tuple[Mapping[str, Any], ...] = ()


_FACT_TABLES = {
    "Transactions._id": "transaction",
    "Transactions.submitter": "submitter",
    "Transactions.project": "project",
    "Transactions.instrument": "instrument",
}


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def upload_facts(data: Any) -> UploadFacts:
    """The transaction, submitter, project, instrument, key/values and files of ``data``."""
    facts: dict[str, str] = {}
    key_values: list[tuple[str, str]] = []
    files: list[Mapping[str, Any]] = []
    for entry in data if isinstance(data, list) else ():
        if not isinstance(entry, dict):
            continue
        table = entry.get("destinationTable")
        if table in _FACT_TABLES:
            facts.setdefault(_FACT_TABLES[table], _text(entry.get("value")))
        elif table == "TransactionKeyValue":
            key_values.append((_text(entry.get("key")), _text(entry.get("value"))))
        elif table == "Files":
            files.append(entry)
    return UploadFacts(**facts, key_values=tuple(key_values), files=tuple(files))


def _event_data(task: store.Task) -> Any:
    try:
        return json.loads(task.event_json).get("data")
    except (ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class Row:
    """One run in the list."""

    task_id: str
    state: TaskState
    reason: str
    event_id: str
    source: str
    transaction: str
    submitter: str
    project: str
    instrument: str
    created: str
    duration: str
    attempt: int


#: Who sent each recent task's event (an event never changes): the list parses each event once.
_WHO: OrderedDict[str, tuple[str, str, str, str]] = OrderedDict()
_WHO_LOCK = threading.Lock()
WHO_CACHE = 20_000


def _who(task: store.Task) -> tuple[str, str, str, str]:
    """The transaction, submitter, project and instrument of the task's event."""
    with _WHO_LOCK:
        known = _WHO.get(task.id)
    if known is None:
        facts = upload_facts(_event_data(task))
        known = (facts.transaction, facts.submitter, facts.project, facts.instrument)
        with _WHO_LOCK:
            _WHO[task.id] = known
            while len(_WHO) > WHO_CACHE:
                _WHO.popitem(last=False)
    return known


def row_of(task: store.Task, now: datetime) -> Row:
    """The list's row of ``task``."""
    transaction, submitter, project, instrument = _who(task)
    state = state_of(task)
    end = task.finished if state.final else now
    return Row(
        task_id=task.id,
        state=state,
        reason=reason_of(task),
        event_id=one_line(task.event_id, 120),
        source=one_line(task.source, 160),
        transaction=task.input_transaction or transaction,
        submitter=submitter,
        project=project,
        instrument=instrument,
        created=task.created.strftime("%Y-%m-%d %H:%M:%S"),
        duration=duration_text(_seconds(task.started or task.created, end)),
        attempt=task.attempts,
    )


def counts(by_state: Mapping[TaskState, int]) -> list[tuple[TaskState, int]]:
    """The number of tasks in each state, in :data:`STATE_ORDER`."""
    return [(state, by_state.get(state, 0)) for state in STATE_ORDER]


@dataclass(frozen=True)
class FilterForm:
    """The list's filter form, filled in with the query shown."""

    states: tuple[str, ...]
    since: str
    until: str
    q: str
    links: Mapping[str, str]  #: "prev", "next", and each state's count link: query strings


def _day(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M")


def filter_form(query: store.TaskQuery) -> FilterForm:
    """What the filter form shows, and the links to other pages of the same query."""
    links = {
        "prev": query_string(query, query.page - 1),
        "next": query_string(query, query.page + 1),
    }
    for state in STATE_ORDER:
        links[state.value] = query_string(replace(query, states=(state,)), 1)
    return FilterForm(
        states=tuple(state.value for state in query.states),
        since=_day(query.since),
        until=_day(query.until),
        q=query.q or "",
        links=links,
    )


def query_string(query: store.TaskQuery, page: int) -> str:
    """``query`` at ``page`` as the dashboard's URL query (without the default size)."""
    pairs = [pair for pair in parse_qsl(query.params(page)) if pair[0] != "size"]
    return urlencode(pairs)


@dataclass(frozen=True)
class AttemptView:
    """One attempt of a run: when, by whom, how it ended."""

    number: int
    started: str
    finished: str
    took: str
    state: str
    reason: str
    worker: str


def attempt_views(attempts: Iterable[store.Attempt]) -> list[AttemptView]:
    """Every attempt of a run, first first."""
    return [
        AttemptView(
            number=attempt.number,
            started=time_text(attempt.started),
            finished=time_text(attempt.finished),
            took=duration_text(_seconds(attempt.started, attempt.finished)),
            state=attempt.state or "running",
            reason=one_line(attempt.reason),
            worker=attempt.worker or "",
        )
        for attempt in attempts
    ]


@dataclass(frozen=True)
class TimelineStep:
    """One moment of a run: what happened, when, and how long after it was received."""

    label: str
    at: str
    offset: str
    state: str = ""


@dataclass(frozen=True)
class ModelView:
    """One model run as the run page shows it."""

    model: str
    outcome: str
    ok: bool
    duration: str
    started: str
    ended: str
    limit: str
    reason: str
    exit: str
    isolation: str
    stdout: str
    stderr: str
    traceback: str


def _parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def model_views(
    models: Iterable[Mapping[str, Any]], logs: Iterable[ModelLog] = ()
) -> list[ModelView]:
    """The models of the last attempt, from the stored per-model records and kept logs."""
    kept = {(entry.model, entry.stream): entry for entry in logs}

    def log_text(model: str, stream: str) -> str:
        entry = kept.get((model, stream))
        if entry is None:
            return ""
        return ("[... earlier output not kept ...]\n" if entry.truncated else "") + entry.text

    views = []
    for run in models:
        name = _text(run.get("model"))
        exit_code, signal_name = run.get("exit_code"), run.get("signal_name")
        exit_text = (
            f"signal {signal_name}" if signal_name else "" if exit_code is None else str(exit_code)
        )
        views.append(
            ModelView(
                model=name,
                outcome=_text(run.get("outcome")),
                ok=run.get("outcome") == "ok",
                duration=duration_text(run.get("duration_seconds")),
                started=_text(run.get("started")),
                ended=_text(run.get("ended")),
                limit=_text(run.get("limit")),
                reason=_text(run.get("reason")),
                exit=exit_text,
                isolation=_text(run.get("isolation")),
                stdout=log_text(name, "stdout"),
                stderr=log_text(name, "stderr"),
                traceback=_text(run.get("traceback")),
            )
        )
    return views


def timeline(task: store.Task, models: Sequence[Mapping[str, Any]]) -> list[TimelineStep]:
    """Received, queued, started, each model's start and end, finished."""
    start = task.created
    moments: list[tuple[str, datetime | None, str]] = [
        ("received", task.created, ""),
        ("queued", task.queued_at, ""),
        (f"attempt {task.attempts} started" if task.attempts else "started", task.started, ""),
    ]
    for run in models:
        moments.append(
            (f"model {_text(run.get('model'))} started", _parse_iso(run.get("started")), "")
        )
        moments.append(
            (
                f"model {_text(run.get('model'))} ended: {_text(run.get('outcome'))}",
                _parse_iso(run.get("ended")),
                "ok" if run.get("outcome") == "ok" else "failed",
            )
        )
    if state_of(task).final:
        moments.append((f"finished: {state_of(task).value}", task.finished, state_of(task).value))
    steps: list[TimelineStep] = []
    for label, at, state in moments:
        if at is None:
            continue
        offset = _seconds(start, at)
        # the date once; then the time of day (UTC), the offset says the rest
        when = time_text(at) if not steps or at.date() != start.date() else at.strftime("%H:%M:%S")
        after = "+" + duration_text(offset) if offset else ""
        steps.append(TimelineStep(label, when, after, state))
    return steps


@dataclass(frozen=True)
class ConfigView:
    """One config's values as the event gave them."""

    name: str
    values: list[tuple[str, str, str]] = field(default_factory=list)  #: section, key, value


def config_views(
    key_values: Iterable[tuple[str, str]],
) -> tuple[list[ConfigView], list[tuple[str, str]]]:
    """The ``proxymod.config_N.SECTION.key`` values per config, and the other key/values."""
    configs: dict[str, ConfigView] = {}
    others: list[tuple[str, str]] = []
    for key, value in key_values:
        parts = key.split(".", 3)
        if len(parts) == 4 and parts[0] == "proxymod" and parts[1].startswith("config_"):
            configs.setdefault(parts[1], ConfigView(parts[1])).values.append(
                (parts[2], parts[3], value)
            )
        else:
            others.append((key, value))
    return sorted(configs.values(), key=lambda c: (len(c.name), c.name)), others


def transaction_link(source: str, transaction: int | None) -> str:
    """The Metadata URL of ``transaction``, when the event came from a Metadata URL naming one
    (``http://metadata.example/transactions?_id=N``); "" otherwise. Only http(s) URLs."""
    base, marker, _ = source.rpartition("transactions?_id=")
    if transaction is None or not marker or not base.startswith(("http://", "https://")):
        return ""
    return f"{base}{marker}{int(transaction)}"
