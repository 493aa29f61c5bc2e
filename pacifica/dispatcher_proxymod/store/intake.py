"""Group commit: concurrent receives share one INSERT, one commit and one round trip.

One writer thread owns a connection and a bounded queue. :meth:`Intake.record` puts a row on
the queue and waits until the statement that holds it has committed. The writer takes
everything waiting (at most :data:`BATCH_ROWS` rows, :data:`BATCH_CHARS` characters of event
JSON) and runs one autocommitted multi-row ``INSERT`` with the dialect's conflict clause on
``event_key`` and ``RETURNING id, event_key`` (:mod:`.batch`). There is no timer: a lone
request is written at once; under load the rows that arrived while the previous statement ran
form the next one.

Errors (the tree)::

    Exception
     +-- IntakeBusy            answer 503 with Retry-After
          +-- IntakeFull       the queue holds its limit of rows: this one was not taken
          +-- IntakeTimeout    not committed within the caller's wait (it may commit later)
          +-- IntakeClosed     the intake is closing: no new row is taken

A database that is down raises its PeeWee error (``OperationalError``, ``InterfaceError``) to
every caller of the batch; a row the database refuses (a NUL on PostgreSQL, a value too long
for MariaDB, a lone surrogate) fails the batch's statement, the batch is written again row by
row, and only that row's caller gets the error.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import peewee

from ..settings import Settings
from ..states import TaskStatus
from .batch import BatchInsert, timed_out
from .db import database_proxy
from .models import Task
from .record import NewTask, Recorded

log = logging.getLogger(__name__)

#: Most rows in one statement (enough for 64 connections; a larger batch only waits longer).
BATCH_ROWS = 128
#: Most characters of event JSON in one statement beyond its first row (MariaDB refuses a
#: statement over ``max_allowed_packet``, 16 MiB by default); a larger event goes alone.
BATCH_CHARS = 2 * 1024 * 1024
#: After a batch with more event JSON than this the writer's connection is closed (the next
#: batch opens another): a database client keeps buffers as large as the largest statement
#: it sent (SQLite's cache, libpq's, about 12 MiB after one 4 MiB event), for the process's life.
LARGE_BATCH_CHARS = 256 * 1024
#: Errors of the connection rather than of a row: every caller of the batch gets them.
CONNECTION_ERRORS = (peewee.OperationalError, peewee.InterfaceError)


class IntakeBusy(Exception):
    """The row is not (known to be) committed and the service is busy: answer 503."""


class IntakeFull(IntakeBusy):
    """The queue holds ``limit`` rows already: this row was not taken."""

    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(f"the intake queue is full ({queued} of {limit} rows waiting)")
        self.queued = queued
        self.limit = limit


class IntakeTimeout(IntakeBusy):
    """The row was not committed within ``waited`` seconds; it may still commit later (a
    repeated delivery then finds it)."""

    def __init__(self, task_id: str, waited: float) -> None:
        super().__init__(f"task {task_id} was not committed within {waited:g} s")
        self.task_id = task_id
        self.waited = waited


class IntakeClosed(IntakeBusy):
    """The intake is closing (the process stops): it takes no new row."""

    def __init__(self) -> None:
        super().__init__("the intake is closed")


@dataclass(frozen=True)
class IntakeStats:
    """What the writer did so far."""

    statements: int  #: INSERT statements run (each one transaction), row-by-row ones too
    rows: int  #: rows handed to the writer
    created: int  #: rows inserted
    duplicates: int  #: rows that found an earlier row of their event
    failed: int  #: rows whose caller got an error
    fallbacks: int  #: batches written again row by row after a refused row
    largest: int  #: most rows in one batch
    connections: int  #: connections the writer opened (again after a large batch, or an error)


class _Written(NamedTuple):
    """A row of this batch is the event's task (its caller builds the ``Task``, off the
    writer's thread)."""

    row: NewTask  #: the batch's first row of the event
    created: bool  #: whether it is the caller's own row
    receipt: object = None  #: what ``on_committed`` returned, for a row it was given


#: What the writer hands back for one row.
_Outcome = Recorded | _Written | BaseException


def _with_receipt(outcome: _Outcome, receipt: object) -> _Outcome:
    """``outcome`` with what ``on_committed`` returned for its row."""
    if isinstance(outcome, _Written):
        return outcome._replace(receipt=receipt)
    if isinstance(outcome, Recorded):
        return replace(outcome, receipt=receipt)
    return outcome


class _Pending:
    """One caller's row and, once written, its outcome (``done`` is released then)."""

    __slots__ = ("done", "outcome", "row")

    def __init__(self, row: NewTask) -> None:
        self.row = row
        self.outcome: _Outcome | None = None
        self.done = threading.Lock()
        self.done.acquire()  # the cheapest wake-up CPython has: a released lock

    def finish(self, outcome: _Outcome) -> None:
        self.outcome = outcome
        self.done.release()


class Intake:
    """The one writer of received tasks (see the module's docstring).

    ``database`` defaults to the store's open database; the writer uses its own connection of
    it. ``on_committed(ids)`` is called on the writer thread after each commit with the ids of
    the rows it created in status ``accepted`` (those to publish), before their callers are
    woken; every waiting caller waits for it too, so it must bound its own time (the web's
    publishes their messages: publisher.py) and not call :meth:`record`. What it returns is
    those rows' :attr:`Recorded.receipt` (the web: whether the messages left).
    ``returning=False`` reads the rows back with a ``SELECT`` even where the INSERT could
    return them (what MySQL needs; None: see :mod:`.batch`).
    """

    def __init__(
        self,
        database: peewee.Database | None = None,
        *,
        queue_limit: int = 1024,
        wait_seconds: float = 10.0,
        statement_timeout: float = 5.0,
        on_committed: Callable[[list[str]], object] | None = None,
        returning: bool | None = None,
    ) -> None:
        chosen = database if database is not None else database_proxy.obj
        if chosen is None:
            raise RuntimeError("the task store is not open: call open_database(settings) first")
        self._db: peewee.Database = chosen
        self._limit = max(1, queue_limit)
        self._wait = wait_seconds
        self._on_committed = on_committed
        self._queue: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._counts = dict.fromkeys(IntakeStats.__dataclass_fields__, 0)
        self._batch = BatchInsert(chosen, statement_timeout, returning)
        #: the connection the statement limit was set on (peewee's raw connection object)
        self._prepared: object = None
        self._thread = threading.Thread(target=self._run, name="store-intake", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(
        cls, settings: Settings, on_committed: Callable[[list[str]], object] | None = None
    ) -> Intake:
        """The intake of the store's open database, sized by ``settings``."""
        return cls(
            queue_limit=settings.intake_queue,
            wait_seconds=settings.intake_wait_seconds,
            statement_timeout=settings.statement_timeout_seconds,
            on_committed=on_committed,
        )

    # ----------------------------------------------------------------------- callers

    def record(self, row: NewTask, timeout: float | None = None) -> Recorded:
        """Insert ``row``, or find the earlier row of its event; return once committed.

        Raises :class:`IntakeBusy` (full, timed out, closed), the database's error when it is
        down, or the row's own error when the database refuses it.
        """
        pending = _Pending(row)
        with self._lock:
            if self._closing:
                raise IntakeClosed()
            if len(self._queue) >= self._limit:
                raise IntakeFull(len(self._queue), self._limit)
            self._queue.append(pending)
            self._wake.notify()
        waited = self._wait if timeout is None else timeout
        if not pending.done.acquire(timeout=max(0.0, waited)):
            raise IntakeTimeout(row.id, waited)
        outcome = pending.outcome
        if isinstance(outcome, _Written):
            return Recorded(Task(**outcome.row.columns()), outcome.created, outcome.receipt)
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome

    @property
    def queued(self) -> int:
        """Rows waiting for the writer (not counting the batch being written)."""
        return len(self._queue)

    @property
    def stats(self) -> IntakeStats:
        """The writer's counts so far."""
        return IntakeStats(**self._counts)

    def close(self, timeout: float | None = None) -> bool:
        """Take no new row, write every queued one, stop the writer; True once it stopped."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ----------------------------------------------------------------------- the writer

    def _run(self) -> None:
        try:
            while (batch := self._take()) is not None:
                try:
                    self._write(batch)
                    if sum(len(pending.row.event_json) for pending in batch) > LARGE_BATCH_CHARS:
                        self._disconnect()
                except Exception as exc:  # a bug here must not leave callers waiting
                    log.exception("the intake writer failed on a batch")
                    for pending in batch:
                        if pending.outcome is None:
                            pending.finish(exc)
                # not kept while waiting for the next batch: a large event's text would stay
                # beside the next one's body as it is parsed (its caller has answered by then)
                del batch
        finally:
            with suppress(Exception):
                self._db.close()

    def _take(self) -> list[_Pending] | None:
        """Everything waiting, up to the batch limits; None once closed and drained."""
        with self._lock:
            while not self._queue and not self._closing:
                self._wake.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft()]
            chars = 0
            while self._queue and len(batch) < BATCH_ROWS:
                chars += len(self._queue[0].row.event_json)
                if chars > BATCH_CHARS:
                    break
                batch.append(self._queue.popleft())
        return batch

    def _write(self, batch: list[_Pending]) -> None:
        counts = self._counts
        counts["rows"] += len(batch)
        counts["largest"] = max(counts["largest"], len(batch))
        outcomes: Sequence[_Outcome]
        try:
            outcomes = self._attempt([p.row for p in batch])
        except CONNECTION_ERRORS as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:  # one refused row fails the whole statement
            if len(batch) == 1:
                outcomes = [exc]
            else:
                counts["fallbacks"] += 1
                outcomes = [self._alone(pending.row) for pending in batch]
        publish: list[str] = []
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                counts["failed"] += 1
            elif outcome.created:
                counts["created"] += 1
                if pending.row.status == TaskStatus.ACCEPTED.value:
                    publish.append(pending.row.id)
            else:
                counts["duplicates"] += 1
        receipt = None
        if publish and self._on_committed is not None:
            try:
                receipt = self._on_committed(publish)
            except Exception:  # the rows are committed: recovery publishes them
                log.exception("on_committed failed for %d task(s)", len(publish))
        handed = set(publish) if receipt is not None else set()
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.row.id in handed:
                outcome = _with_receipt(outcome, receipt)
            pending.finish(outcome)

    def _alone(self, row: NewTask) -> _Outcome:
        try:
            return self._attempt([row])[0]
        except Exception as exc:
            return exc

    def _attempt(self, rows: list[NewTask]) -> list[_Outcome]:
        """Insert ``rows``; once more on a fresh connection if a kept one turned out dead."""
        fresh = self._connect()
        try:
            return self._insert(rows)
        except CONNECTION_ERRORS as exc:
            self._disconnect()
            if fresh or timed_out(exc):
                raise
            log.info("the intake's connection was lost (%s): connecting again", exc)
        self._connect()
        try:
            return self._insert(rows)
        except CONNECTION_ERRORS:
            self._disconnect()
            raise

    def _insert(self, rows: list[NewTask]) -> list[_Outcome]:
        """One statement for the batch; the earlier rows of its duplicates read after."""
        self._counts["statements"] += 1
        first: dict[str, NewTask] = {}
        for row in rows:  # a second row of an event in the same batch is a duplicate
            first.setdefault(row.event_key, row)
        stored = self._batch.execute(list(first.values()))
        earlier: dict[str, Task] = {}
        others = [key for key, row in first.items() if stored.get(key) != row.id]
        if others:
            found: Any = Task.select().where(Task.event_key.in_(others)).execute(self._db)
            earlier = {task.event_key: task for task in found}
        outcomes: list[_Outcome] = []
        for row in rows:
            leader = first[row.event_key]
            task = earlier.get(row.event_key)
            if task is None and stored.get(row.event_key) == leader.id:
                outcomes.append(_Written(leader, row is leader))
            elif task is None:  # deleted in between: as if never received
                outcomes.append(peewee.DoesNotExist(f"the task of event {row.event_key} vanished"))
            else:  # a committed retry of our own statement has our id
                outcomes.append(Recorded(task, row is leader and task.id == leader.id))
        return outcomes

    def _connect(self) -> bool:
        """Open the writer's connection with its statement limit; True if it is new to the
        writer (one that ``on_committed``'s store calls opened on this thread gets the limit
        now)."""
        database: Any = self._db  # (peewee's connection() is untyped)
        if database.is_closed():
            database.connect()
            self._counts["connections"] += 1
        elif database.connection() is self._prepared:
            return False
        try:
            self._batch.prepare()
        except Exception:
            self._disconnect()
            raise
        self._prepared = database.connection()
        return True

    def _disconnect(self) -> None:
        with suppress(Exception):
            self._db.close()
