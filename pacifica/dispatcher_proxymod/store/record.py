"""A received event's row: built (:func:`new_task`), recorded, and marked queued.

``web`` records through the group commit (:mod:`.intake`); :func:`record_event` writes one row
on its own (the CLI, tests). A row is written before the HTTP answer. Its ``queued_at`` says
when its message was handed to the broker: set by :func:`mark_queued_many` after the publish,
or, for the web's rows, already in the ``INSERT`` (``new_task(queued=True)``), because the web
publishes every batch right after its commit and clears the mark again
(:func:`clear_queued_many`) for what it could not publish.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

import peewee

from ..events import Event, transaction_id_of
from ..states import Stage, TaskStatus
from .db import connection, database_proxy, reconnecting, utcnow
from .models import Task, event_key, one_line


@dataclass(frozen=True)
class Recorded:
    """The row an event maps to and whether this call created it."""

    task: Task
    created: bool
    #: what the intake's ``on_committed`` returned for this row's commit (the web: whether its
    #: message left); None for a row not handed to it
    receipt: object = None


@dataclass(frozen=True)
class NewTask:
    """The columns of a task row about to be inserted (see :func:`new_task`)."""

    id: str
    event_key: str
    source: str
    event_id: str
    event_type: str
    specversion: str
    event_time: str | None
    event_json: str
    status: str
    route: str | None
    input_transaction: str | None
    created: datetime
    updated: datetime
    error_type: str | None = None
    error_message: str | None = None
    reason: str | None = None
    stage: str | None = None
    finished: datetime | None = None
    queued_at: datetime | None = None

    def columns(self) -> dict[str, Any]:
        """The row as ``Task`` field names and values (every column given, for a multi-row
        INSERT whose rows must all name the same columns)."""
        return {name: getattr(self, name) for name in _NEW_TASK_FIELDS}


def new_task(
    event: Event,
    status: TaskStatus,
    route: str | None = None,
    reason: str | None = None,
    event_json: str | None = None,
    queued: bool = False,
) -> NewTask:
    """The row of a newly received event, with a fresh id.

    With a ``reason`` the task is recorded rejected at once (stage ``validate``).
    ``event_json`` is the event as the store keeps it, when the caller has it already
    (default: ``event.to_json()``). ``queued``: the caller publishes the row's message right
    after the commit (the web's intake), so ``queued_at`` is set in the ``INSERT``.
    """
    now = utcnow()
    transaction = transaction_id_of(event.data)
    rejected = reason is not None
    return NewTask(
        id=str(uuid.uuid4()),
        event_key=event_key(event.source, event.id),
        source=event.source,
        event_id=event.id,
        event_type=event.type,
        specversion=event.specversion,
        event_time=event.time,
        event_json=event.to_json() if event_json is None else event_json,
        status=status.value,
        route=route,
        # longer than the column: not a Pacifica id, and not worth refusing the event for
        input_transaction=None
        if transaction is None or transaction >= 10**31
        else str(transaction),
        created=now,
        updated=now,
        error_type="UnprocessableEvent" if rejected else None,
        error_message=reason,
        reason=one_line(reason),
        stage=Stage.VALIDATE.value if rejected else None,
        finished=now if rejected else None,
        queued_at=now if queued else None,
    )


_NEW_TASK_FIELDS = tuple(field.name for field in dataclass_fields(NewTask))


@reconnecting
def record_event(
    event: Event, status: TaskStatus, route: str | None = None, reason: str | None = None
) -> Recorded:
    """Insert the task of ``event``, or return the existing one for a repeated delivery
    (one row at a time, for the commands and tests; the web process uses :class:`~.intake.Intake`).

    With a ``reason`` the task is recorded rejected at once (stage ``validate``).
    """
    row = new_task(event, status, route, reason)
    with connection():
        try:  # one autocommitted INSERT: durable before the caller answers
            task = Task.create(**row.columns())
            return Recorded(task, True)
        except peewee.IntegrityError:
            pass
        return Recorded(Task.get(Task.event_key == row.event_key), False)


def mark_queued(task_id: str) -> None:
    """Note that a message for the task reached the broker."""
    mark_queued_many([task_id])


@reconnecting
def mark_queued_many(task_ids: Collection[str]) -> int:
    """Note that messages for the tasks reached the broker, in one UPDATE; how many rows it
    changed (a task deleted meanwhile is skipped)."""
    if not task_ids:
        return 0
    with connection(), database_proxy.atomic():
        if isinstance(database_proxy.obj, peewee.PostgresqlDatabase):
            # the mark need not wait for its WAL flush: a mark lost in a crash only makes
            # recovery publish the task again, which is harmless (the claim is atomic)
            database_proxy.execute_sql("SET LOCAL synchronous_commit = off")
        now = utcnow()
        changed: int = (
            Task.update(queued_at=now, updated=now).where(Task.id.in_(list(task_ids))).execute()
        )
        return changed


@reconnecting
def clear_queued_many(task_ids: Collection[str]) -> int:
    """Take back the ``queued_at`` of waiting tasks whose message did not reach the broker
    after all, in one UPDATE, so that recovery re-publishes them within seconds; how many rows
    it changed."""
    if not task_ids:
        return 0
    with connection():
        cleared: int = (
            Task.update(queued_at=None, updated=utcnow())
            .where(Task.id.in_(list(task_ids)) & (Task.status == TaskStatus.ACCEPTED.value))
            .execute()
        )
        return cleared
