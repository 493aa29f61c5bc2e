"""The end of each model's stdout and stderr (the last ``DISPATCHER_LOG_TAIL_KB`` KiB), kept
with the task so the web process serves it whatever the transfer, after the work directory is
gone."""

from __future__ import annotations

from collections.abc import Sequence

import peewee

from ..modellog import ModelLog
from .db import connection, database_proxy, reconnecting
from .models import LongTextField


class TaskLog(peewee.Model):
    """The end of one model's stdout or stderr."""

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


def replace_logs(task_id: str, logs: Sequence[ModelLog]) -> None:
    """Make ``logs`` the task's kept logs (inside the caller's transaction)."""
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
