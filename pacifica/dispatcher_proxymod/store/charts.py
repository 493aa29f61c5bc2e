"""The charts of a task's output series, kept with the task so the web process draws them
without a worker's disk (``charts.Chart.to_json()`` dicts, bounded in size)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import peewee

from .db import connection, database_proxy, reconnecting
from .models import LongTextField


class TaskChart(peewee.Model):
    """One chart of a task's output series."""

    task_id = peewee.CharField(max_length=36)
    position = peewee.IntegerField()
    chart_json = LongTextField()

    class Meta:
        database = database_proxy
        table_name = "dispatcher_task_chart"
        indexes = ((("task_id", "position"), True),)


def replace_charts(task_id: str, charts: Sequence[dict[str, Any]]) -> None:
    """Make ``charts`` the task's charts (inside the caller's transaction)."""
    TaskChart.delete().where(TaskChart.task_id == task_id).execute()
    rows = [
        {"task_id": task_id, "position": position, "chart_json": json.dumps(chart)}
        for position, chart in enumerate(charts)
    ]
    for start in range(0, len(rows), 20):  # bounded statements (each chart is up to ~1 MiB)
        TaskChart.insert_many(rows[start : start + 20]).execute()


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
