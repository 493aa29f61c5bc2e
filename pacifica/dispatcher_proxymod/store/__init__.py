"""The task store: one PeeWee row per received event, the source of truth for its state.

``db`` holds the connection, ``models`` the tables, ``schema`` opens (creates, upgrades) them,
``record`` a received event's row, ``intake`` the web's group commit of them (``batch`` its
statements), ``lifecycle`` a task's state changes after, ``control`` an operator's retry and
cancel, ``query`` the one task search, ``shape`` the task JSON every view derives from,
``charts`` the charts of a task's outputs, ``logs`` the end of its models' stdout and stderr.
"""

from .charts import TaskChart, charts_of, replace_charts
from .control import Cancelled, CancelOutcome, Retried, cancel_task, retry_task
from .db import close_database, connection, database_proxy, ping, reconnecting, utcnow
from .intake import (
    Intake,
    IntakeBusy,
    IntakeClosed,
    IntakeFull,
    IntakeStats,
    IntakeTimeout,
)
from .lifecycle import (
    Claim,
    Outcome,
    beat,
    cancel_requested,
    claim,
    count_by_status,
    finish,
    get_task,
    history,
    needing_requeue,
    queued_within,
    release,
)
from .logs import TaskLog, logs_of, replace_logs
from .models import Attempt, LongTextField, Task, event_key, one_line
from .query import TaskPage, TaskQuery, counts_by_state, find_tasks, list_tasks, parse_time
from .record import (
    NewTask,
    Recorded,
    clear_queued_many,
    mark_queued,
    mark_queued_many,
    new_task,
    record_event,
)
from .schema import TABLES, TASK_TABLES, open_database
from .shape import SUMMARY_FIELDS, TASK_FIELDS, record, summary

__all__ = [
    "SUMMARY_FIELDS",
    "TABLES",
    "TASK_FIELDS",
    "TASK_TABLES",
    "Attempt",
    "CancelOutcome",
    "Cancelled",
    "Claim",
    "Intake",
    "IntakeBusy",
    "IntakeClosed",
    "IntakeFull",
    "IntakeStats",
    "IntakeTimeout",
    "LongTextField",
    "NewTask",
    "Outcome",
    "Recorded",
    "Retried",
    "Task",
    "TaskChart",
    "TaskLog",
    "TaskPage",
    "TaskQuery",
    "beat",
    "cancel_requested",
    "cancel_task",
    "charts_of",
    "claim",
    "clear_queued_many",
    "close_database",
    "connection",
    "count_by_status",
    "counts_by_state",
    "database_proxy",
    "event_key",
    "find_tasks",
    "finish",
    "get_task",
    "history",
    "list_tasks",
    "logs_of",
    "mark_queued",
    "mark_queued_many",
    "needing_requeue",
    "new_task",
    "one_line",
    "open_database",
    "parse_time",
    "ping",
    "queued_within",
    "reconnecting",
    "record",
    "record_event",
    "release",
    "replace_charts",
    "replace_logs",
    "retry_task",
    "summary",
    "utcnow",
]
