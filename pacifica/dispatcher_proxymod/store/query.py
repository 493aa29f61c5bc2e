"""Finding tasks: the one query the API (``GET /``), the command line and the dashboard share.

:class:`TaskQuery` holds the filters (states, a created-time window, a search text) and the
page; :meth:`TaskQuery.from_params` reads them from text parameters (HTTP query or command
line) and names the parameter that is wrong. :func:`find_tasks` answers with a :class:`TaskPage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import peewee

from ..errors import InvalidParameter
from ..states import TaskState, state_of
from .db import connection, reconnecting
from .models import Task
from .tallies import StateCount

#: The highest page number accepted (keeps the SQL offset a 64-bit integer).
MAX_PAGE = 1_000_000_000
MAX_SIZE = 1000
#: The longest search text accepted.
MAX_SEARCH = 256
PARAMETERS = ("state", "since", "until", "q", "page", "size")


@dataclass(frozen=True)
class TaskQuery:
    """Which tasks, and which page of them (newest first)."""

    states: tuple[TaskState, ...] = ()
    since: datetime | None = None  #: created at or after (naive UTC)
    until: datetime | None = None  #: created before (naive UTC)
    q: str | None = None  #: a substring of the event id, the source or the input transaction
    page: int = 1
    size: int = 50

    @classmethod
    def from_params(cls, params: Mapping[str, str | Sequence[str]], default_size: int) -> TaskQuery:
        """The query of text parameters; :class:`InvalidParameter` names the first bad one."""
        for name in params:
            if name not in PARAMETERS:
                raise InvalidParameter(name, f"unknown parameter; use {', '.join(PARAMETERS)}")
        values = {name: _as_list(value) for name, value in params.items()}
        for name, given in values.items():
            if name != "state" and len(given) > 1:
                raise InvalidParameter(name, "given more than once")
        states = tuple(_state(text) for text in values.get("state", []))
        since = _single(values, "since")
        until = _single(values, "until")
        q = _single(values, "q")
        page = _single(values, "page")
        size = _single(values, "size")
        query = cls(
            states=tuple(dict.fromkeys(states)),
            since=None if since is None else parse_time("since", since),
            until=None if until is None else parse_time("until", until),
            q=None if q is None else _search(q),
            page=1 if page is None else _integer("page", page, MAX_PAGE),
            size=default_size if size is None else _integer("size", size, MAX_SIZE),
        )
        return query

    def params(self, page: int | None = None) -> str:
        """This query as a URL query string (for the link to another page)."""
        pairs: list[tuple[str, str]] = [("state", state.value) for state in self.states]
        if self.since is not None:
            pairs.append(("since", self.since.isoformat() + "Z"))
        if self.until is not None:
            pairs.append(("until", self.until.isoformat() + "Z"))
        if self.q is not None:
            pairs.append(("q", self.q))
        pairs += [("page", str(self.page if page is None else page)), ("size", str(self.size))]
        return urlencode(pairs)


@dataclass(frozen=True)
class TaskPage:
    """One page of the tasks a query found, and how many it found in all."""

    query: TaskQuery
    tasks: list[Task] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> bool:
        """True when a later page has tasks."""
        return self.query.page * self.query.size < self.total


def parse_time(name: str, text: str) -> datetime:
    """An ISO 8601 date or time as naive UTC (no zone: UTC); InvalidParameter if it is none."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidParameter(
            name, f"{text!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _single(values: Mapping[str, list[str]], name: str) -> str | None:
    given = values.get(name)
    return given[0] if given else None


def _state(text: str) -> TaskState:
    try:
        return TaskState(text.strip().lower())
    except ValueError:
        words = ", ".join(state.value for state in TaskState)
        raise InvalidParameter("state", f"{text!r} is not a state; use one of {words}") from None


def _integer(name: str, text: str, maximum: int) -> int:
    try:
        number = int(text)
    except ValueError:
        raise InvalidParameter(name, f"{text!r} is not an integer") from None
    if not 1 <= number <= maximum:
        raise InvalidParameter(name, f"must be between 1 and {maximum}")
    return number


def _search(text: str) -> str:
    if len(text) > MAX_SEARCH:
        raise InvalidParameter("q", f"longer than {MAX_SEARCH} characters")
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in text):
        raise InvalidParameter("q", "holds a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameter("q", "is not valid Unicode") from None
    return text


def _like(column: peewee.Field, text: str) -> peewee.ColumnBase:
    """``column`` contains ``text``, case-insensitively, with LIKE's wildcards taken literally.

    Spelt out in SQL: PeeWee turns its LIKE into GLOB on SQLite.
    """
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return peewee.NodeList(
        (
            peewee.fn.LOWER(column),
            peewee.SQL("LIKE"),
            peewee.Value(f"%{escaped}%"),
            peewee.SQL("ESCAPE '!'"),
        )
    )


def _filters(query: TaskQuery, with_states: bool = True) -> peewee.ColumnBase | None:
    conditions: list[peewee.ColumnBase] = []
    if with_states and query.states:
        conditions.append(Task.status.in_([state.status.value for state in query.states]))
    if query.since is not None:
        conditions.append(Task.created >= query.since)
    if query.until is not None:
        conditions.append(Task.created < query.until)
    if query.q:
        conditions.append(
            _like(Task.event_id, query.q)
            | _like(Task.source, query.q)
            | _like(Task.input_transaction, query.q)
        )
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined &= condition
    return combined


def _where(
    select: peewee.ModelSelect[Task], condition: peewee.ColumnBase | None
) -> peewee.ModelSelect[Task]:
    return select if condition is None else select.where(condition)


def _by_state_only(query: TaskQuery) -> bool:
    """True when the query narrows by state alone: the kept counts answer how many."""
    return query.since is None and query.until is None and not query.q


def _kept_counts() -> dict[TaskState, int]:
    """Tasks per state from ``dispatcher_state_count`` (kept exact by triggers): a few rows
    instead of counting 10^5 (PostgreSQL scans the whole table for a ``COUNT``)."""
    counts = dict.fromkeys(TaskState, 0)
    for row in StateCount.select():
        try:
            counts[state_of(row.status)] += int(row.tasks)
        except ValueError:  # a status this version does not know
            continue
    return counts


@reconnecting
def find_tasks(query: TaskQuery) -> TaskPage:
    """The page of tasks ``query`` asks for, newest first, and how many match in all."""
    condition = _filters(query)
    with connection():
        rows = _where(Task.select(), condition).order_by(Task.created.desc(), Task.id.desc())
        tasks = list(rows.paginate(query.page, query.size))
        if _by_state_only(query):
            kept = _kept_counts()
            total = sum(kept[state] for state in query.states or TaskState)
        else:
            total = _where(Task.select(), condition).count()
    return TaskPage(query, tasks, total)


def list_tasks(page: int, size: int) -> tuple[list[Task], int]:
    """One page (1-based) of all tasks, newest first, and the total count."""
    found = find_tasks(TaskQuery(page=page, size=size))
    return found.tasks, found.total


@reconnecting
def counts_by_state(query: TaskQuery | None = None) -> dict[TaskState, int]:
    """How many tasks are in each state (every state, zeros included), within ``query``'s time
    window and search, whatever its states and page."""
    if query is None or _by_state_only(query):
        with connection():
            return _kept_counts()
    condition = _filters(query, with_states=False)
    with connection():
        # COUNT(*), not COUNT(id): the status index alone answers it (SQLite read every row
        # for the id: 136 ms instead of 21 ms with 10^5 tasks)
        select = Task.select(Task.status, peewee.fn.COUNT(peewee.SQL("*"))).group_by(Task.status)
        rows: Iterable[tuple[str, int]] = _where(select, condition).tuples()  # type: ignore[assignment]
        counts = dict.fromkeys(TaskState, 0)
        for status, count in rows:
            counts[state_of(status)] += count
    return counts
