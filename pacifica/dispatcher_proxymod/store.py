"""The task store: one PeeWee row per received event, the source of truth for its state.

A row is written before the HTTP answer; workers claim it before running and record the
outcome after. ``(source, event id)`` is unique, so a repeated delivery finds the first row.
Timestamps are naive UTC.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import peewee
import pymysql
from playhouse.db_url import connect as connect_url

from .events import Event
from .modellog import ModelLog
from .settings import Settings
from .states import TaskStatus

database_proxy = peewee.DatabaseProxy()


def utcnow() -> datetime:
    """The current time as naive UTC, the form every timestamp is stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


class Task(peewee.Model):
    """One received event and what became of it."""

    id = peewee.CharField(max_length=36, primary_key=True)
    event_key = peewee.CharField(max_length=64, unique=True)
    source = peewee.TextField()
    event_id = peewee.TextField()
    event_type = peewee.TextField()
    specversion = peewee.CharField(max_length=8)
    event_time = peewee.TextField(null=True)
    event_json = peewee.TextField()
    status = peewee.CharField(max_length=32, index=True)
    route = peewee.CharField(max_length=64, null=True)
    error_type = peewee.CharField(max_length=255, null=True)
    error_message = peewee.TextField(null=True)
    error_traceback = peewee.TextField(null=True)
    models_json = peewee.TextField(default="[]")
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

    class Meta:
        database = database_proxy
        table_name = "dispatcher_task"

    @property
    def task_status(self) -> TaskStatus:
        """The status as a :class:`TaskStatus`."""
        return TaskStatus(self.status)

    def to_summary(self) -> dict[str, Any]:
        """The short form shown in the task list."""
        return {
            "taskID": self.id,
            "status": self.status,
            "source": self.source,
            "eventID": self.event_id,
            "created": _iso(self.created),
            "updated": _iso(self.updated),
        }

    def to_record(self) -> dict[str, Any]:
        """The whole record, as ``GET /get/<id>`` shows it."""
        event = json.loads(self.event_json)
        return {
            "taskID": self.id,
            "status": self.status,
            "route": self.route,
            "event": {
                "specversion": self.specversion,
                "id": self.event_id,
                "source": self.source,
                "type": self.event_type,
                "time": self.event_time,
                "datacontenttype": event.get("datacontenttype"),
                "dataschema": event.get("dataschema"),
                "extensions": event.get("extensions", {}),
                "data": event.get("data"),
            },
            "error": None
            if self.error_type is None
            else {
                "type": self.error_type,
                "message": self.error_message,
                "traceback": self.error_traceback,
            },
            "models": json.loads(self.models_json),
            "result": {
                "location": self.result_location,
                "transaction": self.result_transaction,
            },
            "attempts": self.attempts,
            "worker": self.worker,
            "created": _iso(self.created),
            "updated": _iso(self.updated),
            "queued": _iso(self.queued_at),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
        }


class LongTextField(peewee.TextField):
    """``TEXT``, but ``LONGTEXT`` on MySQL/MariaDB, whose ``TEXT`` holds 64 KiB only."""

    def ddl_datatype(self, ctx: Any) -> Any:
        types = ctx.state.field_types or {}
        return peewee.SQL(types.get("LONGTEXT") or types.get("TEXT", "TEXT"))


class TaskChart(peewee.Model):
    """One chart of a task's output series (``charts.Chart`` as JSON, bounded in size).

    Kept with the task so the web process draws it without a worker's disk.
    """

    task_id = peewee.CharField(max_length=36)
    position = peewee.IntegerField()
    chart_json = LongTextField()

    class Meta:
        database = database_proxy
        table_name = "dispatcher_task_chart"
        indexes = ((("task_id", "position"), True),)


class TaskLog(peewee.Model):
    """The end of one model's stdout or stderr (the last ``DISPATCHER_LOG_TAIL_KB`` KiB).

    Kept with the task so the web process serves it whatever the transfer, after the work
    directory is gone.
    """

    task_id = peewee.CharField(max_length=36)
    position = peewee.IntegerField()  #: the model's place in the run
    model = peewee.CharField(max_length=255)
    stream = peewee.CharField(max_length=8)  #: "stdout" or "stderr"
    text = LongTextField()
    truncated = peewee.BooleanField(default=False)  #: the stream was longer than the tail

    class Meta:
        database = database_proxy
        table_name = "dispatcher_task_log"
        indexes = ((("task_id", "position", "stream"), True),)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def event_key(source: str, event_id: str) -> str:
    """The fixed-length identity of an event, unique per (source, id)."""
    digest = hashlib.sha256()
    digest.update(source.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(event_id.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


#: Every table of the store, created at start when missing.
TABLES = (Task, TaskChart, TaskLog)
#: The tables whose rows belong to one task (``task_id``): deleted with it.
TASK_TABLES = (TaskChart, TaskLog)


def open_database(settings: Settings) -> peewee.Database:
    """Connect the task model to ``settings.database_url`` and create its table if missing."""
    url = settings.database_url
    database: peewee.Database
    if url.startswith("sqlite:"):
        database = connect_url(
            url,
            pragmas={"journal_mode": "wal", "busy_timeout": 30_000, "synchronous": "normal"},
            timeout=30,
        )
    elif url.startswith(("mysql", "mariadb")):
        database = connect_url(
            url,
            # count matched rows, so a claim or heartbeat in the same instant still counts
            client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
            # microseconds, so "newest first" and heartbeats keep their order
            field_types={"DATETIME": "DATETIME(6)", "LONGTEXT": "LONGTEXT"},
        )
    else:
        database = connect_url(url)
    database_proxy.initialize(database)
    with database.connection_context():
        try:
            database.create_tables(TABLES, safe=True)
        except peewee.DatabaseError:
            # another process (web and workers start together) may have won the race:
            # "IF NOT EXISTS" is not atomic on PostgreSQL
            database.rollback()
            if not all(database.table_exists(table._meta.table_name) for table in TABLES):
                raise
    return database


def close_database() -> None:
    """Close this thread's connection, if any."""
    if database_proxy.obj is not None and not database_proxy.is_closed():
        database_proxy.close()


@contextmanager
def connection() -> Iterator[None]:
    """Use this thread's connection, opening it if needed.

    The connection stays open for the thread's next call (web threads live long); after a
    database error it is closed, so the next call connects afresh.
    """
    database: peewee.Database | None = database_proxy.obj
    if database is None:
        raise RuntimeError("the task store is not open: call open_database(settings) first")
    if database.is_closed():
        database.connect()
    try:
        yield
    except (peewee.OperationalError, peewee.InterfaceError):
        with suppress(Exception):
            database.close()
        raise


_P = ParamSpec("_P")
_R = TypeVar("_R")


def reconnecting(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` again once if the connection it used turned out to be dead.

    A long-lived thread keeps its connection between calls; after a database restart the
    first use fails and closes it (see :func:`connection`), and the second attempt connects
    afresh. Only for operations that are safe to repeat.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError):
            return function(*args, **kwargs)

    return wrapper


def ping() -> None:
    """Run a trivial query; raises ``peewee.PeeweeException`` when the database is down."""
    with connection():
        database_proxy.execute_sql("SELECT 1")


@dataclass(frozen=True)
class Recorded:
    """The row an event maps to and whether this call created it."""

    task: Task
    created: bool


@reconnecting
def record_event(
    event: Event, status: TaskStatus, route: str | None = None, reason: str | None = None
) -> Recorded:
    """Insert the task of ``event``, or return the existing one for a repeated delivery."""
    key = event_key(event.source, event.id)
    now = utcnow()
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "event_key": key,
        "source": event.source,
        "event_id": event.id,
        "event_type": event.type,
        "specversion": event.specversion,
        "event_time": event.time,
        "event_json": event.to_json(),
        "status": status.value,
        "route": route,
        "created": now,
        "updated": now,
    }
    if reason is not None:
        fields.update(error_type="UnprocessableEvent", error_message=reason, finished=now)
    with connection():
        try:  # one autocommitted INSERT: durable before the caller answers
            task = Task.create(**fields)
            return Recorded(task, True)
        except peewee.IntegrityError:
            pass
        return Recorded(Task.get(Task.event_key == key), False)


@reconnecting
def get_task(task_id: str) -> Task | None:
    """The task with this id, or None."""
    with connection():
        return Task.get_or_none(Task.id == task_id)


@reconnecting
def list_tasks(page: int, size: int) -> tuple[list[Task], int]:
    """One page (1-based) of tasks, newest first, and the total count."""
    with connection():
        query = Task.select().order_by(Task.created.desc(), Task.id.desc())
        return list(query.paginate(page, size)), Task.select().count()


@reconnecting
def mark_queued(task_id: str) -> None:
    """Note that a message for the task reached the broker."""
    with connection():
        now = utcnow()
        Task.update(queued_at=now, updated=now).where(Task.id == task_id).execute()


class Claim(enum.Enum):
    """What a worker found when it tried to take a task."""

    CLAIMED = "claimed"  #: this worker now owns the task
    FINAL = "final"  #: the task already ended; drop the message
    BUSY = "busy"  #: another worker holds it with a fresh heartbeat; try later
    MISSING = "missing"  #: no such task


def claim(task_id: str, worker: str, stale_after: float) -> Claim:
    """Atomically take a waiting task, or one whose worker stopped sending heartbeats."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_after)
    with connection():
        taken = (
            Task.update(
                status=TaskStatus.PROCESSING.value,
                worker=worker,
                heartbeat=now,
                started=now,
                updated=now,
                attempts=Task.attempts + 1,
            )
            .where(
                (Task.id == task_id)
                & (
                    (Task.status == TaskStatus.ACCEPTED.value)
                    | ((Task.status == TaskStatus.PROCESSING.value) & (Task.heartbeat < stale))
                )
            )
            .execute()
        )
        if taken:
            return Claim.CLAIMED
        task = Task.get_or_none(Task.id == task_id)
    if task is None:
        return Claim.MISSING
    return Claim.FINAL if task.task_status.final else Claim.BUSY


def beat(task_id: str, worker: str) -> bool:
    """Refresh the heartbeat of a task this worker holds; False if it lost the task."""
    now = utcnow()
    with connection():
        return bool(
            Task.update(heartbeat=now, updated=now)
            .where(
                (Task.id == task_id)
                & (Task.worker == worker)
                & (Task.status == TaskStatus.PROCESSING.value)
            )
            .execute()
        )


def release(task_id: str, worker: str, reason: str) -> None:
    """Give a claimed task back (it will be retried), keeping the reason as its last error."""
    now = utcnow()
    with connection():
        Task.update(
            status=TaskStatus.ACCEPTED.value,
            worker=None,
            heartbeat=None,
            error_type="TransientError",
            error_message=reason,
            queued_at=now,
            updated=now,
        ).where((Task.id == task_id) & (Task.worker == worker)).execute()


@dataclass(frozen=True)
class Outcome:
    """The final state of a task as its worker reports it."""

    status: TaskStatus
    models: Sequence[dict[str, Any]] = ()
    result_location: str | None = None
    result_transaction: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    charts: Sequence[dict[str, Any]] = ()  #: ``charts.Chart.to_json()`` of each chart
    logs: Sequence[ModelLog] = ()  #: the end of each model's stdout and stderr


def finish(task_id: str, worker: str | None, outcome: Outcome) -> bool:
    """Record a final outcome; False if another worker owns the task by now."""
    if not outcome.status.final:
        raise ValueError(f"{outcome.status} is not a final status")
    now = utcnow()
    condition = Task.id == task_id
    if worker is not None:
        condition &= Task.worker == worker
    with connection(), database_proxy.atomic():
        updated = bool(
            Task.update(
                status=outcome.status.value,
                models_json=json.dumps(list(outcome.models)),
                result_location=outcome.result_location,
                result_transaction=outcome.result_transaction,
                error_type=outcome.error_type,
                error_message=outcome.error_message,
                error_traceback=outcome.error_traceback,
                heartbeat=None,
                finished=now,
                updated=now,
            )
            .where(condition)
            .execute()
        )
        if updated:
            _replace_charts(task_id, outcome.charts)
            _replace_logs(task_id, outcome.logs)
        return updated


def _replace_charts(task_id: str, charts: Sequence[dict[str, Any]]) -> None:
    TaskChart.delete().where(TaskChart.task_id == task_id).execute()
    rows = [
        {"task_id": task_id, "position": position, "chart_json": json.dumps(chart)}
        for position, chart in enumerate(charts)
    ]
    for start in range(0, len(rows), 20):  # bounded statements (each chart is up to ~1 MiB)
        TaskChart.insert_many(rows[start : start + 20]).execute()


def _replace_logs(task_id: str, logs: Sequence[ModelLog]) -> None:
    TaskLog.delete().where(TaskLog.task_id == task_id).execute()
    positions: dict[str, int] = {}
    rows = []
    for entry in logs:
        position = positions.setdefault(entry.model, len(positions))
        rows.append(
            {
                "task_id": task_id,
                "position": position,
                "model": entry.model,
                "stream": entry.stream,
                "text": entry.text,
                "truncated": entry.truncated,
            }
        )
    for start in range(0, len(rows), 20):  # bounded statements (each up to the tail size)
        TaskLog.insert_many(rows[start : start + 20]).execute()


@reconnecting
def logs_of(task_id: str) -> list[ModelLog]:
    """The kept model logs of a task, in run order, stdout before stderr."""
    with connection():
        query = (
            TaskLog.select()
            .where(TaskLog.task_id == task_id)
            .order_by(TaskLog.position, TaskLog.stream.desc())
        )
        return [ModelLog(row.model, row.stream, row.text, row.truncated) for row in query]


@reconnecting
def charts_of(task_id: str) -> list[dict[str, Any]]:
    """The charts recorded for a task, in order (``charts.Chart.to_json()`` dicts)."""
    with connection():
        query = (
            TaskChart.select(TaskChart.chart_json)
            .where(TaskChart.task_id == task_id)
            .order_by(TaskChart.position)
        )
        return [json.loads(row.chart_json) for row in query]


def needing_requeue(
    requeue_after: float, stale_after: float, grace: float = 5.0, limit: int = 500
) -> list[str]:
    """Tasks whose message may be lost: never queued (after ``grace`` seconds), queued long ago
    and still waiting, or processing with a stale heartbeat."""
    now = utcnow()
    waiting_since = now - timedelta(seconds=requeue_after)
    unqueued_since = now - timedelta(seconds=grace)
    stale = now - timedelta(seconds=stale_after)
    with connection():
        query = (
            Task.select(Task.id)
            .where(
                (
                    (Task.status == TaskStatus.ACCEPTED.value)
                    & (
                        (Task.queued_at.is_null() & (Task.created < unqueued_since))
                        | (Task.queued_at < waiting_since)
                    )
                )
                | ((Task.status == TaskStatus.PROCESSING.value) & (Task.heartbeat < stale))
            )
            .order_by(Task.created)
            .limit(limit)
        )
        return [row.id for row in query]


def count_by_status() -> dict[str, int]:
    """How many tasks are in each status."""
    with connection():
        query = Task.select(Task.status, peewee.fn.COUNT(Task.id)).group_by(Task.status)
        rows: Iterable[tuple[str, int]] = query.tuples()  # type: ignore[assignment]
        return dict(rows)
