"""The tables: one :class:`Task` row per received event, one :class:`Attempt` row per run of it.

Timestamps are naive UTC. ``(source, event id)`` is unique, so a repeated delivery finds the
first row. Columns added after a database was created are added at start (:mod:`.schema`), so
every new column is nullable or has a default.
"""

from __future__ import annotations

import hashlib
from typing import Any

import peewee

from ..states import Stage, TaskState, TaskStatus
from .db import database_proxy


class LongTextField(peewee.TextField):
    """``TEXT``, but ``LONGTEXT`` on MySQL/MariaDB, whose ``TEXT`` holds 64 KiB only."""

    def ddl_datatype(self, ctx: Any) -> Any:
        types = ctx.state.field_types or {}
        return peewee.SQL(types.get("LONGTEXT") or types.get("TEXT", "TEXT"))


#: The longest ``reason`` kept (one line for people; the full message stays in error_message).
REASON_CHARS = 500


class Task(peewee.Model):
    """One received event and what became of it."""

    id = peewee.CharField(max_length=36, primary_key=True)
    event_key = peewee.CharField(max_length=64, unique=True)
    source = peewee.TextField()
    event_id = peewee.TextField()
    event_type = peewee.TextField()
    specversion = peewee.CharField(max_length=8)
    event_time = peewee.TextField(null=True)
    event_json = LongTextField()
    status = peewee.CharField(max_length=32, index=True)
    route = peewee.CharField(max_length=64, null=True)
    error_type = peewee.CharField(max_length=255, null=True)
    error_message = LongTextField(null=True)
    error_traceback = LongTextField(null=True)
    models_json = LongTextField(default="[]")
    result_location = peewee.TextField(null=True)
    result_transaction = peewee.BigIntegerField(null=True)
    attempts = peewee.IntegerField(default=0)
    queued_at = peewee.DateTimeField(null=True, index=True)
    worker = peewee.CharField(max_length=255, null=True)
    heartbeat = peewee.DateTimeField(null=True)
    created = peewee.DateTimeField(index=True)
    updated = peewee.DateTimeField()
    started = peewee.DateTimeField(null=True)
    finished = peewee.DateTimeField(null=True)
    #: one line saying what went wrong, set with every final outcome but success
    reason = peewee.TextField(null=True)
    #: the :class:`Stage` a task that did not succeed ended in
    stage = peewee.CharField(max_length=16, null=True)
    #: the event's Transactions._id (the input transaction), as text for ``q`` searches
    input_transaction = peewee.CharField(max_length=32, null=True, index=True)
    #: set while a cancel of the running task is pending: who asked, and when
    cancel_request = peewee.TextField(null=True)
    #: ``attempts`` when an operator last retried the task (transfer retries count from it;
    #: null: never retried, an old database adds the column without rewriting the table)
    retry_base = peewee.IntegerField(null=True)

    class Meta:
        database = database_proxy
        table_name = "dispatcher_task"
        # the task list's orders: newest first, and newest first within states (created at
        # start where missing, on SQLite and PostgreSQL; on MariaDB with a new table)
        indexes = ((("created", "id"), False), (("status", "created"), False))

    @property
    def task_status(self) -> TaskStatus:
        """The status as a :class:`TaskStatus`."""
        return TaskStatus(self.status)

    @property
    def state(self) -> TaskState:
        """The state in words."""
        return self.task_status.state

    @property
    def task_stage(self) -> Stage | None:
        """The stage as a :class:`Stage`, or None."""
        return None if self.stage is None else Stage(self.stage)


class Attempt(peewee.Model):
    """One run of a task by a worker: when, by whom, and how it ended."""

    id = peewee.AutoField()
    task_id = peewee.CharField(max_length=36, index=True)
    number = peewee.IntegerField()
    worker = peewee.CharField(max_length=255, null=True)
    started = peewee.DateTimeField()
    finished = peewee.DateTimeField(null=True)
    #: a :class:`TaskState` word once the attempt ended (``failed`` for a lost worker)
    state = peewee.CharField(max_length=16, null=True)
    reason = peewee.TextField(null=True)

    class Meta:
        database = database_proxy
        table_name = "dispatcher_attempt"
        indexes = ((("task_id", "number"), True),)


def event_key(source: str, event_id: str) -> str:
    """The fixed-length identity of an event, unique per (source, id)."""
    digest = hashlib.sha256()
    digest.update(source.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(event_id.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def one_line(message: str | None) -> str | None:
    """``message`` as one line for people: white space runs folded, at most REASON_CHARS."""
    if message is None:
        return None
    line = " ".join(message.split())
    if len(line) > REASON_CHARS:
        line = line[: REASON_CHARS - 1] + "…"
    return line or None
