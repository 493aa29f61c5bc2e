"""Fleet-wide figures kept in the task store, so a ``/metrics`` scrape reads a few rows.

Two small tables, whatever the number of tasks:

* ``dispatcher_state_shard``: how many tasks are in each status now, in 16 shards (by the first
  hex digit of the task id, so concurrent inserts rarely wait on the same row). Database
  triggers on the task table keep it (insert, delete, and an update that changes the status),
  so every change counts, whoever makes it: a worker, the web process, a purge, an operator's
  own SQL.
* ``dispatcher_tally``: histogram buckets (count and sum of the observations in each) of the
  queue wait, the task duration by final state and the model duration by outcome, added to in
  the transaction that records a task's end (:func:`record_finish`). Counters are derived
  from them: model runs by outcome, finished tasks by state.

Rows are created at start (:func:`install`), so every change is a plain ``UPDATE`` on all
three databases; rows are updated in one order, so concurrent finishes never deadlock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee

from ..states import TaskState, TaskStatus
from .db import database_proxy

TASK_TABLE = "dispatcher_task"

QUEUE_WAIT = "queue_wait_seconds"
TASK_DURATION = "task_duration_seconds"
MODEL_DURATION = "model_duration_seconds"

#: The upper bounds of each histogram's buckets, in seconds (the last one is +Inf).
BUCKETS: Mapping[str, tuple[float, ...]] = {
    QUEUE_WAIT: (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, math.inf),
    TASK_DURATION: (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, math.inf),
    MODEL_DURATION: (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, math.inf),
}
#: The model outcomes (``ModelRun.outcome``, as the API lists them) and the final states.
MODEL_OUTCOMES = ("ok", "error", "timeout", "limit", "killed")
FINAL_STATES = tuple(state.value for state in TaskState if state.final)
#: Each histogram's labels ("" for none).
LABELS: Mapping[str, tuple[str, ...]] = {
    QUEUE_WAIT: ("",),
    TASK_DURATION: FINAL_STATES,
    MODEL_DURATION: MODEL_OUTCOMES,
}


def bound_text(bound: float) -> str:
    """A bucket's upper bound as Prometheus writes it (``le``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


#: The shard of a task: the first character of its id (a UUID: 0-9, a-f).
SHARDS = "0123456789abcdef"


class StateCount(peewee.Model):
    """How many tasks of one shard are in one status now (kept by triggers)."""

    status = peewee.CharField(max_length=32)
    shard = peewee.CharField(max_length=1)
    tasks = peewee.BigIntegerField(default=0)

    class Meta:
        database = database_proxy
        table_name = "dispatcher_state_shard"
        primary_key = peewee.CompositeKey("status", "shard")


class Tally(peewee.Model):
    """One histogram bucket: how many observations fell in it and their sum."""

    metric = peewee.CharField(max_length=64)
    label = peewee.CharField(max_length=32)
    le = peewee.CharField(max_length=16)
    count = peewee.BigIntegerField(default=0)
    total = peewee.DoubleField(default=0.0)

    class Meta:
        database = database_proxy
        table_name = "dispatcher_tally"
        primary_key = peewee.CompositeKey("metric", "label", "le")


TABLES = (StateCount, Tally)


# --------------------------------------------------------------------------- install


def install(database: Any) -> None:
    """Create the rows and the triggers that are missing; count the tasks once when the
    triggers are new (an existing store starts right)."""
    StateCount.insert_many(
        [
            {"status": status.value, "shard": shard, "tasks": 0}
            for status in TaskStatus
            for shard in SHARDS
        ]
    ).on_conflict_ignore().execute()
    _drop_first_triggers(database)
    Tally.insert_many(
        [
            {"metric": metric, "label": label, "le": bound_text(bound)}
            for metric, bounds in BUCKETS.items()
            for label in LABELS[metric]
            for bound in bounds
        ]
    ).on_conflict_ignore().execute()
    if isinstance(database, peewee.PostgresqlDatabase):
        _install_postgresql(database)
    elif isinstance(database, peewee.MySQLDatabase):
        _install_mysql(database)
    else:
        _install_sqlite(database)


# (constant SQL: the table names are ours, nothing comes from outside)
_INSERT = (
    "UPDATE dispatcher_state_shard SET tasks = tasks + 1 "
    "WHERE status = NEW.status AND shard = SUBSTR(NEW.id, 1, 1)"
)
_DELETE = (
    "UPDATE dispatcher_state_shard SET tasks = tasks - 1 "
    "WHERE status = OLD.status AND shard = SUBSTR(OLD.id, 1, 1)"
)
#: One statement for both rows, so concurrent changes lock them in the same (index) order.
_MOVE = (
    "UPDATE dispatcher_state_shard "
    "SET tasks = tasks + CASE WHEN status = NEW.status THEN 1 ELSE -1 END "
    "WHERE shard = SUBSTR(NEW.id, 1, 1) AND status IN (OLD.status, NEW.status)"
)
#: The triggers of the first version (one count row per status), dropped at install.
_FIRST_TRIGGERS = (
    "dispatcher_task_count",
    "dispatcher_task_count_insert",
    "dispatcher_task_count_delete",
    "dispatcher_task_count_move",
)
#: The trigger (PostgreSQL) or triggers (SQLite, MySQL) that keep the shards.
PG_TRIGGER = "dispatcher_task_shard"


def _triggers(database: Any) -> set[str]:
    """The names of the triggers on the task table."""
    if isinstance(database, peewee.PostgresqlDatabase):
        query = (
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid = 'dispatcher_task'::regclass"
        )
    elif isinstance(database, peewee.MySQLDatabase):
        query = (
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'dispatcher_task'"
        )
    else:
        query = (
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'dispatcher_task'"
        )
    return {row[0] for row in database.execute_sql(query)}


def _drop_first_triggers(database: Any) -> None:
    """Drop the first version's triggers (one count row per status), where they exist."""
    for name in sorted(_triggers(database) & set(_FIRST_TRIGGERS)):
        suffix = f" ON {TASK_TABLE}" if isinstance(database, peewee.PostgresqlDatabase) else ""
        try:
            database.execute_sql(f"DROP TRIGGER IF EXISTS {name}{suffix}")
        except peewee.DatabaseError:  # another process starting at the same time
            if isinstance(database, peewee.PostgresqlDatabase):
                database.rollback()


def _install_sqlite(database: Any) -> None:
    with database.atomic("IMMEDIATE"):  # writers wait: the count and the triggers agree
        exists = database.execute_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
            ("dispatcher_task_shard_move",),
        ).fetchone()
        if exists:
            return
        database.execute_sql(
            f"CREATE TRIGGER dispatcher_task_shard_insert AFTER INSERT ON {TASK_TABLE} "
            f"BEGIN {_INSERT}; END"
        )
        database.execute_sql(
            f"CREATE TRIGGER dispatcher_task_shard_delete AFTER DELETE ON {TASK_TABLE} "
            f"BEGIN {_DELETE}; END"
        )
        database.execute_sql(
            f"CREATE TRIGGER dispatcher_task_shard_move AFTER UPDATE OF status ON {TASK_TABLE} "
            f"WHEN OLD.status <> NEW.status BEGIN {_MOVE}; END"
        )
        recount(database)


#: PostgreSQL: inserts and deletes counted once per statement from its transition table (a
#: purge or a bulk load updates each shard row once, not once per task), status changes per row.
_PG_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION dispatcher_task_shard_added() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN
  UPDATE dispatcher_state_shard s SET tasks = s.tasks + d.n
  FROM (SELECT status, SUBSTR(id, 1, 1) AS shard, COUNT(*) AS n FROM added GROUP BY 1, 2) d
  WHERE s.status = d.status AND s.shard = d.shard;
  RETURN NULL;
END $$""",
    """CREATE OR REPLACE FUNCTION dispatcher_task_shard_removed() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN
  UPDATE dispatcher_state_shard s SET tasks = s.tasks - d.n
  FROM (SELECT status, SUBSTR(id, 1, 1) AS shard, COUNT(*) AS n FROM removed GROUP BY 1, 2) d
  WHERE s.status = d.status AND s.shard = d.shard;
  RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION dispatcher_task_shard_moved() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN {_MOVE}; RETURN NULL; END $$""",
)
_PG_TRIGGERS = (
    f"CREATE TRIGGER dispatcher_task_shard_insert AFTER INSERT ON {TASK_TABLE} "
    "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
    "EXECUTE FUNCTION dispatcher_task_shard_added()",
    f"CREATE TRIGGER dispatcher_task_shard_delete AFTER DELETE ON {TASK_TABLE} "
    "REFERENCING OLD TABLE AS removed FOR EACH STATEMENT "
    "EXECUTE FUNCTION dispatcher_task_shard_removed()",
    # created last: its presence says the set is complete
    f"CREATE TRIGGER {PG_TRIGGER} AFTER UPDATE OF status ON {TASK_TABLE} FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION dispatcher_task_shard_moved()",
)


def _install_postgresql(database: Any) -> None:
    check = "SELECT 1 FROM pg_trigger WHERE tgname = 'dispatcher_task_shard' AND NOT tgisinternal"
    if database.execute_sql(check).fetchone():
        return
    try:
        with database.atomic():
            # writers wait until the triggers exist and the count is taken
            database.execute_sql(f"LOCK TABLE {TASK_TABLE} IN SHARE ROW EXCLUSIVE MODE")
            if database.execute_sql(check).fetchone():  # another process was first
                return
            for statement in (*_PG_FUNCTIONS, *_PG_TRIGGERS):
                database.execute_sql(statement)
            recount(database)
    except peewee.DatabaseError:
        # processes starting together: CREATE OR REPLACE FUNCTION is not atomic either
        database.rollback()
        if not database.execute_sql(check).fetchone():
            raise


def recount(database: Any) -> None:
    """Set the shard counts from one ``GROUP BY`` over the task table (at install, and after a
    bulk change made with the triggers off)."""
    counts = {
        (status, shard): tasks
        for status, shard, tasks in database.execute_sql(
            "SELECT status, SUBSTR(id, 1, 1), COUNT(*) FROM dispatcher_task GROUP BY 1, 2"
        )
    }
    StateCount.update(tasks=0).execute()
    for (status, shard), tasks in counts.items():
        StateCount.update(tasks=tasks).where(
            (StateCount.status == status) & (StateCount.shard == shard)
        ).execute()


def _install_mysql(database: Any) -> None:
    """MySQL/MariaDB. DDL commits by itself there: tasks that change in the instant between
    the triggers and the count may be counted twice or not at all, once, at first start."""
    existing = {
        row[0]
        for row in database.execute_sql(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = %s",
            (TASK_TABLE,),
        )
    }
    wanted = {
        "dispatcher_task_shard_insert": f"AFTER INSERT ON {TASK_TABLE} FOR EACH ROW {_INSERT}",
        "dispatcher_task_shard_delete": f"AFTER DELETE ON {TASK_TABLE} FOR EACH ROW {_DELETE}",
        "dispatcher_task_shard_move": (
            f"AFTER UPDATE ON {TASK_TABLE} FOR EACH ROW {_MOVE} AND OLD.status <> NEW.status"
        ),
    }
    created = False
    for name, body in wanted.items():
        if name in existing:
            continue
        try:
            database.execute_sql(f"CREATE TRIGGER {name} {body}")
            created = True
        except peewee.DatabaseError as exc:
            if "already exists" not in str(exc):
                raise
    if created:
        recount(database)


# --------------------------------------------------------------------------- record


def _bucket(metric: str, value: float) -> str:
    for bound in BUCKETS[metric]:
        if value <= bound:
            return bound_text(bound)
    return "+Inf"


def record_finish(
    created: datetime,
    started: datetime | None,
    finished: datetime,
    state: TaskState,
    models: Sequence[Mapping[str, Any]],
) -> None:
    """Add a finished task's observations (call inside the transaction that records it)."""
    observations: list[tuple[str, str, float]] = []
    if started is not None:
        observations.append((QUEUE_WAIT, "", max(0.0, (started - created).total_seconds())))
        observations.append(
            (TASK_DURATION, state.value, max(0.0, (finished - started).total_seconds()))
        )
    for run in models:
        outcome = str(run.get("outcome"))
        seconds = run.get("duration_seconds")
        if outcome in MODEL_OUTCOMES and isinstance(seconds, int | float):
            observations.append((MODEL_DURATION, outcome, max(0.0, float(seconds))))
    keyed = sorted(
        (metric, label, _bucket(metric, value), value) for metric, label, value in observations
    )
    for metric, label, le, value in keyed:  # one order for every writer: no deadlock
        Tally.update(count=Tally.count + 1, total=Tally.total + value).where(
            (Tally.metric == metric) & (Tally.label == label) & (Tally.le == le)
        ).execute()


# --------------------------------------------------------------------------- read


@dataclass(frozen=True)
class Histogram:
    """One labelled histogram: cumulative bucket counts, the sum and the count."""

    label: str
    buckets: list[tuple[str, int]]  #: (le, cumulative count), ending with +Inf
    total: float
    count: int


@dataclass(frozen=True)
class Snapshot:
    """Every figure a scrape shows."""

    states: dict[str, int]  #: state word -> tasks now
    histograms: dict[str, list[Histogram]]  #: metric -> one per label


def read() -> Snapshot:
    """The figures, from two small tables (a few dozen rows, whatever the task count)."""
    states = {state.value: 0 for state in TaskState}
    counts: Iterable[tuple[str, int]] = StateCount.select(  # type: ignore[assignment]
        StateCount.status, StateCount.tasks
    ).tuples()
    for status, tasks in counts:
        try:
            states[TaskStatus(status).state.value] += int(tasks)
        except ValueError:  # a status this version does not know
            continue
    columns = (Tally.metric, Tally.label, Tally.le, Tally.count, Tally.total)
    tally: Iterable[tuple[str, str, str, int, float]] = Tally.select(  # type: ignore[assignment]
        *columns
    ).tuples()
    rows: dict[tuple[str, str, str], tuple[int, float]] = {
        (metric, label, le): (int(count), float(total)) for metric, label, le, count, total in tally
    }
    histograms: dict[str, list[Histogram]] = {}
    for metric, bounds in BUCKETS.items():
        histograms[metric] = [_histogram(rows, metric, label, bounds) for label in LABELS[metric]]
    return Snapshot(states, histograms)


def _histogram(
    rows: Mapping[tuple[str, str, str], tuple[int, float]],
    metric: str,
    label: str,
    bounds: Iterable[float],
) -> Histogram:
    cumulative, total, buckets = 0, 0.0, []
    for bound in bounds:
        count, value = rows.get((metric, label, bound_text(bound)), (0, 0.0))
        cumulative += count
        total += value
        buckets.append((bound_text(bound), cumulative))
    return Histogram(label, buckets, total, cumulative)
