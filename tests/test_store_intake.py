"""The store's group commit (store.intake, store.batch) on the database under test (SQLite,
PostgreSQL or MariaDB).

To see rows share a statement without racing the clock, the tests stop the writer in its
first statement: another transaction holds an uncommitted row of that statement's event (on
SQLite, the write lock), so the rows that arrive meanwhile are queued; its rollback lets the
writer go on. Every wait is for a condition, with a generous deadline.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import peewee
import pytest
from playhouse.db_url import connect as connect_url

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import Event, parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.store import (
    Intake,
    IntakeClosed,
    IntakeFull,
    IntakeTimeout,
    NewTask,
    Recorded,
    tallies,
)
from pacifica.dispatcher_proxymod.store.intake import LARGE_BATCH_CHARS

#: Long enough for any wait on a loaded machine; a test that needs it has failed anyway.
DEADLINE = 60.0


def _event(document: dict[str, Any], event_id: str) -> Event:
    body = json.dumps(dict(document, eventID=event_id)).encode()
    return parse_http({"Content-Type": "application/json"}, body)


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.005)


class _Caller(threading.Thread):
    """One request: ``intake.record(row)`` on its own thread, keeping what came back."""

    def __init__(self, intake: Intake, row: NewTask) -> None:
        super().__init__(daemon=True)
        self.intake, self.row = intake, row
        self.result: Recorded | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.intake.record(self.row, DEADLINE)
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> Recorded:
        self.join(DEADLINE)
        assert not self.is_alive(), "the caller is still waiting"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@contextmanager
def _writer_held(intake: Intake, event: Event) -> Iterator[_Caller]:
    """The writer stuck in a statement holding ``event`` until the block ends."""
    database = store.database_proxy.obj
    with store.connection(), database.atomic() as transaction:
        store.Task.insert(**store.new_task(event, TaskStatus.ACCEPTED).columns()).execute()
        held = _Caller(intake, store.new_task(event, TaskStatus.ACCEPTED))
        _wait_for(lambda: intake.stats.statements >= 1 and intake.queued == 0)
        yield held
        transaction.rollback()  # the held statement goes on and inserts its row
    assert held.outcome().created


@pytest.fixture
def published() -> list[str]:
    return []


@pytest.fixture(params=[None, False], ids=["returning", "select"])
def intake(
    open_store: Settings, published: list[str], request: pytest.FixtureRequest
) -> Iterator[Intake]:
    """An intake whose INSERT returns its rows, and one that reads them back (as on MySQL)."""
    writer = Intake(
        statement_timeout=DEADLINE, on_committed=published.extend, returning=request.param
    )
    yield writer
    assert writer.close(DEADLINE)


def _stored_ids() -> dict[str, str]:
    """event_key -> id of every task row, read on the test's own connection."""
    with store.connection():
        rows: Any = store.Task.select(store.Task.event_key, store.Task.id).tuples()
        return dict(rows)


def _counted() -> dict[str, int]:
    counts = {state: 0 for state in tallies.read().states}
    for status, tasks in store.count_by_status().items():
        counts[TaskStatus(status).state.value] += tasks
    return counts


def test_a_lone_row_is_committed_at_once(intake: Intake, example_event: dict[str, Any]) -> None:
    intake.record(store.new_task(_event(example_event, "warm"), TaskStatus.ACCEPTED))
    row = store.new_task(_event(example_event, "lone"), TaskStatus.ACCEPTED, route="proxymod")
    start = time.monotonic()
    recorded = intake.record(row, DEADLINE)
    elapsed = time.monotonic() - start
    assert (
        recorded.created
        and recorded.task.id == row.id
        and recorded.task.status == TaskStatus.ACCEPTED.value
    )
    assert _stored_ids()[row.event_key] == row.id  # visible to another connection: committed
    # no timer waits for company: one statement per row, and far under any batch window
    assert intake.stats.statements == 2 and intake.stats.largest == 1
    assert elapsed < 5.0


def test_the_writer_lets_go_of_its_connection_after_a_large_event(
    intake: Intake, example_event: dict[str, Any]
) -> None:
    small = [store.new_task(_event(example_event, f"small-{n}"), TaskStatus.ACCEPTED) for n in "ab"]
    for row in small:
        intake.record(row, DEADLINE)
    assert intake.stats.connections == 1  # small batches keep the one connection
    large = _event(example_event, "large")
    padded = json.loads(large.to_json())
    padded["extensions"] = {"padding": "x" * (LARGE_BATCH_CHARS + 1)}
    row = store.new_task(Event.from_json(json.dumps(padded)), TaskStatus.ACCEPTED)
    intake.record(row, DEADLINE)
    intake.record(store.new_task(_event(example_event, "after"), TaskStatus.ACCEPTED), DEADLINE)
    # the buffers a client keeps after a large statement went with its connection
    assert intake.stats.connections == 2
    assert _stored_ids()[row.event_key] == row.id


def test_rows_arriving_together_share_one_statement(
    intake: Intake, example_event: dict[str, Any], published: list[str]
) -> None:
    with _writer_held(intake, _event(example_event, "held")):
        callers = [
            _Caller(intake, store.new_task(_event(example_event, f"e{n}"), TaskStatus.ACCEPTED))
            for n in range(40)
        ]
        _wait_for(lambda: intake.queued == 40)
    recorded = [caller.outcome() for caller in callers]
    assert all(r.created for r in recorded)
    stats = intake.stats
    assert (stats.statements, stats.rows, stats.largest, stats.created) == (2, 41, 40, 41)
    stored = _stored_ids()
    assert all(stored[c.row.event_key] == c.row.id for c in callers)
    assert intake.close(DEADLINE)
    assert sorted(published) == sorted(stored.values())


def test_duplicates_get_the_first_row_within_and_across_batches(
    intake: Intake, example_event: dict[str, Any]
) -> None:
    event = _event(example_event, "twice")
    with _writer_held(intake, _event(example_event, "held")):
        first = _Caller(intake, store.new_task(event, TaskStatus.ACCEPTED))
        second = _Caller(intake, store.new_task(event, TaskStatus.ACCEPTED))
        _wait_for(lambda: intake.queued == 2)
    a, b = first.outcome(), second.outcome()
    assert a.task.id == b.task.id and sorted([a.created, b.created]) == [False, True]
    assert intake.stats.statements == 2  # one statement held both
    later = intake.record(store.new_task(event, TaskStatus.ACCEPTED))
    assert not later.created and later.task.id == a.task.id
    assert later.task.event_json == store.get_task(a.task.id).event_json  # type: ignore[union-attr]
    assert intake.stats.duplicates == 2 and _stored_ids()[event_key_of(event)] == a.task.id


def event_key_of(event: Event) -> str:
    return store.event_key(event.source, event.id)


def _bad_rows(url: str, row: NewTask) -> list[NewTask]:
    """Rows this database refuses (a lone surrogate everywhere; NUL and too long values where
    they are refused)."""
    rows = [dataclasses.replace(row, event_type="bad \udc80 type")]
    if url.startswith("postgresql"):
        rows.append(dataclasses.replace(row, source="nul\x00source"))
    if url.startswith(("postgresql", "mysql")):
        rows.append(dataclasses.replace(row, route="r" * 65))  # VARCHAR(64), strict mode
    return rows


def test_a_refused_row_fails_only_its_caller(
    intake: Intake, open_store: Settings, example_event: dict[str, Any], published: list[str]
) -> None:
    bad = _bad_rows(
        open_store.database_url,
        store.new_task(_event(example_event, "bad"), TaskStatus.ACCEPTED),
    )
    goods = [store.new_task(_event(example_event, f"good{n}"), TaskStatus.ACCEPTED) for n in (1, 2)]
    with _writer_held(intake, _event(example_event, "held")):
        callers = [_Caller(intake, row) for row in (goods[0], *bad, goods[1])]
        _wait_for(lambda: intake.queued == len(callers))
    for caller in callers:
        if caller.row in goods:
            assert caller.outcome().created
        else:
            with pytest.raises((ValueError, peewee.DataError)):  # web: 400
                caller.outcome()
    stats = intake.stats
    assert stats.fallbacks == 1 and stats.failed == len(bad) and stats.created == 3
    stored = _stored_ids()
    assert bad[0].event_key not in stored and all(stored[g.event_key] == g.id for g in goods)
    assert intake.close(DEADLINE)
    assert sorted(published) == sorted(stored.values())


def test_a_full_queue_refuses_at_once(open_store: Settings, example_event: dict[str, Any]) -> None:
    intake = Intake(queue_limit=2, statement_timeout=DEADLINE)
    try:
        with _writer_held(intake, _event(example_event, "held")):
            callers = [
                _Caller(intake, store.new_task(_event(example_event, f"q{n}"), TaskStatus.ACCEPTED))
                for n in range(2)
            ]
            _wait_for(lambda: intake.queued == 2)
            extra = store.new_task(_event(example_event, "extra"), TaskStatus.ACCEPTED)
            with pytest.raises(IntakeFull) as refused:
                intake.record(extra, DEADLINE)
            assert (refused.value.queued, refused.value.limit) == (2, 2)
        assert all(caller.outcome().created for caller in callers)
        assert extra.event_key not in _stored_ids()
    finally:
        assert intake.close(DEADLINE)


def test_a_caller_waits_no_longer_than_its_timeout(
    intake: Intake, example_event: dict[str, Any], published: list[str]
) -> None:
    event = _event(example_event, "slow")
    row = store.new_task(event, TaskStatus.ACCEPTED)
    with _writer_held(intake, _event(example_event, "held")):
        with pytest.raises(IntakeTimeout) as late:
            intake.record(row, 0.2)
        assert late.value.task_id == row.id
    _wait_for(lambda: intake.stats.created == 2)  # committed after all
    again = intake.record(store.new_task(event, TaskStatus.ACCEPTED))
    assert not again.created and again.task.id == row.id  # a retry: 200 with the first id
    assert intake.close(DEADLINE)
    assert row.id in published  # and it is published though its caller got 503


def _unreachable(url: str, tmp_path: Path) -> peewee.Database:
    """The database under test's kind, where nothing answers."""
    if url.startswith("sqlite"):
        return peewee.SqliteDatabase(str(tmp_path / "no such folder" / "tasks.sqlite3"))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scheme, rest = url.split("://", 1)
    user, place = rest.split("@", 1)
    name = place.split("/", 1)[1]
    database: peewee.Database = connect_url(f"{scheme}://{user}@127.0.0.1:{port}/{name}")
    return database


def test_a_database_that_is_down_fails_every_caller(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Path
) -> None:
    intake = Intake(_unreachable(open_store.database_url, tmp_path), statement_timeout=5)
    try:
        rows = [
            store.new_task(_event(example_event, f"down{n}"), TaskStatus.ACCEPTED) for n in range(8)
        ]
        callers = [_Caller(intake, row) for row in rows]
        for caller in callers:
            with pytest.raises(peewee.OperationalError):  # web: 503
                caller.outcome()
        with pytest.raises(peewee.OperationalError):  # and the next one too: nothing hangs
            intake.record(rows[0], DEADLINE)
        assert intake.stats.created == 0 and intake.stats.failed == 9
    finally:
        assert intake.close(DEADLINE)


def test_close_writes_everything_queued(
    open_store: Settings, example_event: dict[str, Any], published: list[str]
) -> None:
    intake = Intake(statement_timeout=DEADLINE, on_committed=published.extend)
    with _writer_held(intake, _event(example_event, "held")):
        callers = [
            _Caller(intake, store.new_task(_event(example_event, f"c{n}"), TaskStatus.ACCEPTED))
            for n in range(10)
        ]
        _wait_for(lambda: intake.queued == 10)
        closing = threading.Thread(target=intake.close, args=(DEADLINE,))
        closing.start()  # as on SIGTERM: the queued rows are still written

        def refused() -> bool:
            try:
                intake.record(store.new_task(_event(example_event, "late"), TaskStatus.ACCEPTED))
            except IntakeClosed:
                return True
            raise AssertionError("taken while closing")

        _wait_for(refused)
    closing.join(DEADLINE)
    assert not closing.is_alive()
    assert all(caller.outcome().created for caller in callers)
    stored = _stored_ids()
    assert len(stored) == 11 and sorted(published) == sorted(stored.values())


def test_on_committed_gets_the_created_accepted_ids(
    intake: Intake, example_event: dict[str, Any], published: list[str]
) -> None:
    accepted = intake.record(store.new_task(_event(example_event, "a"), TaskStatus.ACCEPTED))
    rejected = intake.record(
        store.new_task(_event(example_event, "r"), TaskStatus.UNPROCESSABLE, reason="no route")
    )
    again = intake.record(store.new_task(_event(example_event, "a"), TaskStatus.ACCEPTED))
    assert rejected.created and rejected.task.status == TaskStatus.UNPROCESSABLE.value
    assert not again.created
    assert intake.close(DEADLINE)
    assert published == [accepted.task.id]
    record = store.record(store.get_task(rejected.task.id))  # type: ignore[arg-type]
    assert record["error"]["message"] == "no route" and record["finished"] is not None


def test_each_handed_row_gets_what_on_committed_returned(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    handed: list[list[str]] = []

    def ticket(ids: list[str]) -> int:
        handed.append(ids)
        return len(handed)

    writer = Intake(statement_timeout=DEADLINE, on_committed=ticket)
    try:
        first = writer.record(store.new_task(_event(example_event, "t1"), TaskStatus.ACCEPTED))
        second = writer.record(store.new_task(_event(example_event, "t2"), TaskStatus.ACCEPTED))
        again = writer.record(store.new_task(_event(example_event, "t1"), TaskStatus.ACCEPTED))
        refused = writer.record(
            store.new_task(_event(example_event, "t3"), TaskStatus.UNPROCESSABLE, reason="no")
        )
    finally:
        assert writer.close(DEADLINE)
    assert (first.receipt, second.receipt) == (1, 2)
    assert handed == [[first.task.id], [second.task.id]]
    assert again.receipt is None and refused.receipt is None, "not handed to on_committed"


def test_a_row_marked_queued_is_inserted_so(intake: Intake, example_event: dict[str, Any]) -> None:
    marked = store.new_task(_event(example_event, "m"), TaskStatus.ACCEPTED, queued=True)
    plain = store.new_task(_event(example_event, "p"), TaskStatus.ACCEPTED)
    assert marked.queued_at == marked.created and plain.queued_at is None
    for row in (marked, plain):
        intake.record(row)
    stored = {task_id: store.get_task(task_id) for task_id in (marked.id, plain.id)}
    assert stored[marked.id] is not None and stored[marked.id].queued_at is not None
    assert stored[plain.id] is not None and stored[plain.id].queued_at is None


def test_many_threads_keep_rows_and_counts_right(
    intake: Intake, example_event: dict[str, Any], published: list[str]
) -> None:
    """Concurrent callers, a fifth of them repeating another's event: one row per event,
    every caller of an event gets its id, and the trigger-kept counts stay exact."""
    outcomes: list[tuple[str, Recorded]] = []
    lock = threading.Lock()

    def send(thread: int) -> None:
        for n in range(25):
            name = f"shared{n}" if n % 5 == 0 else f"t{thread}-{n}"
            status = TaskStatus.UNPROCESSABLE if n % 7 == 3 else TaskStatus.ACCEPTED
            reason = "refused" if status is TaskStatus.UNPROCESSABLE else None
            row = store.new_task(_event(example_event, name), status, reason=reason)
            recorded = intake.record(row, DEADLINE)
            with lock:
                outcomes.append((row.event_key, recorded))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert len(outcomes) == 200
    stored = _stored_ids()
    assert len(stored) == 8 * 20 + 5
    assert all(stored[key] == recorded.task.id for key, recorded in outcomes)
    assert sum(recorded.created for _, recorded in outcomes) == len(stored)
    assert intake.stats.statements <= intake.stats.rows == 200
    assert tallies.read().states == _counted()
    assert _counted()["waiting"] + _counted()["rejected"] == len(stored)
    assert intake.close(DEADLINE)
    with store.connection():
        waiting = {
            t.id for t in store.Task.select().where(store.Task.status == TaskStatus.ACCEPTED.value)
        }
    assert sorted(published) == sorted(waiting)


def test_the_writer_reconnects_after_losing_its_connection(
    intake: Intake, example_event: dict[str, Any]
) -> None:
    assert intake.record(store.new_task(_event(example_event, "one"), TaskStatus.ACCEPTED)).created
    database = store.database_proxy.obj
    with store.connection():
        if isinstance(database, peewee.PostgresqlDatabase):
            database.execute_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        elif isinstance(database, peewee.MySQLDatabase):
            own = database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]
            rows = database.execute_sql(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> %s",
                (own,),
            ).fetchall()
            for (other,) in rows:
                database.execute_sql(f"KILL {int(other)}")
        else:
            pytest.skip("a SQLite connection cannot be lost")
    two = intake.record(store.new_task(_event(example_event, "two"), TaskStatus.ACCEPTED))
    assert two.created and intake.stats.failed == 0


def test_a_slow_statement_is_cut_off_and_not_repeated(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    intake = Intake(statement_timeout=0.5)
    try:
        assert intake.record(store.new_task(_event(example_event, "warm"), TaskStatus.ACCEPTED))
        event = _event(example_event, "stuck")
        database = store.database_proxy.obj
        with store.connection(), database.atomic() as transaction:
            store.Task.insert(**store.new_task(event, TaskStatus.ACCEPTED).columns()).execute()
            stuck = _Caller(intake, store.new_task(event, TaskStatus.ACCEPTED))
            with pytest.raises(peewee.OperationalError):  # web: 503
                stuck.outcome()
            transaction.rollback()
        assert intake.stats.statements == 2  # the kept connection was not blamed
        assert intake.record(store.new_task(event, TaskStatus.ACCEPTED)).created
    finally:
        assert intake.close(DEADLINE)


def test_a_connection_that_on_committed_opened_gets_the_statement_limit(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """The web's ``on_committed`` may take a batch's queued marks back through the store
    (``store.clear_queued_many``), which opens the writer thread's connection when the writer
    had closed it: the next statement is still cut off at the writer's limit."""
    database = store.database_proxy.obj

    def reopen(ids: list[str]) -> None:
        database.close()  # on the writer's thread, as after a batch that lost its connection
        with store.connection():  # opened by the store's own code, without the intake's limit
            pass

    intake = Intake(statement_timeout=0.5, on_committed=reopen)
    try:
        assert intake.record(store.new_task(_event(example_event, "warm"), TaskStatus.ACCEPTED))
        event = _event(example_event, "stuck")
        with store.connection(), database.atomic() as transaction:
            store.Task.insert(**store.new_task(event, TaskStatus.ACCEPTED).columns()).execute()
            started = time.monotonic()
            stuck = _Caller(intake, store.new_task(event, TaskStatus.ACCEPTED))
            with pytest.raises(peewee.OperationalError):  # not IntakeTimeout after 10 s
                stuck.outcome()
            waited = time.monotonic() - started
            transaction.rollback()
        assert waited < 4.0, f"the statement ran {waited:.1f} s: no limit on it"
    finally:
        assert intake.close(DEADLINE)


def test_the_settings_size_the_intake(open_store: Settings, example_event: dict[str, Any]) -> None:
    settings = open_store.with_changes(
        intake_queue=1, intake_wait_seconds=0.1, statement_timeout_seconds=DEADLINE
    )
    intake = Intake.from_settings(settings)
    try:
        with _writer_held(intake, _event(example_event, "held")):
            row = store.new_task(_event(example_event, "late"), TaskStatus.ACCEPTED)
            with pytest.raises(IntakeTimeout) as late:  # the settings' wait
                intake.record(row)
            assert late.value.waited == 0.1
            with pytest.raises(IntakeFull):  # the late row still holds the one place
                intake.record(store.new_task(_event(example_event, "x"), TaskStatus.ACCEPTED))
    finally:
        assert intake.close(DEADLINE)


def test_new_task_keeps_the_event_as_given(example_event: dict[str, Any]) -> None:
    event = _event(example_event, "given")
    body = json.dumps(dict(example_event, eventID="given"))
    row = store.new_task(event, TaskStatus.ACCEPTED, route="proxymod", event_json=body)
    assert row.event_json == body and row.event_key == event_key_of(event)
    assert (row.route, row.stage, row.reason, row.finished) == ("proxymod", None, None, None)
    assert store.new_task(event, TaskStatus.ACCEPTED).event_json == event.to_json()
    refused = store.new_task(event, TaskStatus.UNPROCESSABLE, reason="no\n route")
    assert (refused.stage, refused.reason, refused.error_message) == (
        "validate",
        "no route",
        "no\n route",
    )
    assert refused.finished == refused.created and refused.id != row.id
