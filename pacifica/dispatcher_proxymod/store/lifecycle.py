"""A task's life in the store after it was recorded: claimed, beating, released or finished.

Workers claim a recorded task (:mod:`.record`) before running and record the
outcome after. Every claim opens an :class:`~.models.Attempt` row and every end of a run
closes it, so a task's history says why each attempt ended, a lost worker included.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import peewee

from ..modellog import ModelLog
from ..states import Stage, TaskState, TaskStatus
from . import tallies
from .charts import replace_charts
from .db import connection, database_proxy, reconnecting, utcnow
from .logs import replace_logs
from .models import Attempt, Task, one_line


@reconnecting
def get_task(task_id: str) -> Task | None:
    """The task with this id, or None."""
    with connection():
        return Task.get_or_none(Task.id == task_id)


@reconnecting
def history(task_id: str) -> list[Attempt]:
    """The attempts of a task, first first."""
    with connection():
        return list(Attempt.select().where(Attempt.task_id == task_id).order_by(Attempt.number))


class Claim(enum.Enum):
    """What a worker found when it tried to take a task."""

    CLAIMED = "claimed"  #: this worker now owns the task
    FINAL = "final"  #: the task already ended; drop the message
    BUSY = "busy"  #: another worker holds it with a fresh heartbeat; try later
    MISSING = "missing"  #: no such task


def claim(task_id: str, worker: str, stale_after: float) -> Claim:
    """Atomically take a waiting task, or one whose worker stopped sending heartbeats.

    Taking a task over closes its lost worker's attempt ("worker lost"); a task whose cancel
    was pending when its worker was lost ends cancelled instead of running again.
    """
    now = utcnow()
    stale = now - timedelta(seconds=stale_after)
    lost = (Task.status == TaskStatus.PROCESSING.value) & (Task.heartbeat < stale)
    with connection():
        if _end_lost_cancelled(task_id, lost, now):
            return Claim.FINAL
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
                    | (lost & Task.cancel_request.is_null())
                )
            )
            .execute()
        )
        task = Task.get_or_none(Task.id == task_id)
        if taken and task is not None:
            _close_attempts(
                task_id, now, TaskState.FAILED, "worker lost: it stopped sending heartbeats"
            )
            Attempt.insert(
                task_id=task_id, number=task.attempts, worker=worker, started=now
            ).on_conflict_ignore().execute()
            return Claim.CLAIMED
    if task is None:
        return Claim.MISSING
    return Claim.FINAL if task.task_status.final else Claim.BUSY


def cancelled_fields(reason: str, now: Any) -> dict[str, Any]:
    """The columns of a task that ends cancelled for ``reason``."""
    return {
        "status": TaskStatus.CANCELLED.value,
        "reason": one_line(reason),
        "stage": None,
        "error_type": "Cancelled",
        "error_message": reason,
        "error_traceback": None,
        "cancel_request": None,
        "heartbeat": None,
        "finished": now,
        "updated": now,
    }


def _end_lost_cancelled(task_id: str, lost: peewee.Expression, now: Any) -> bool:
    """End a task cancelled while its (now lost) worker ran it; True if it was one."""
    pending = (Task.id == task_id) & lost & Task.cancel_request.is_null(False)
    task = Task.get_or_none(pending)
    if task is None or task.cancel_request is None:
        return False
    reason: str = task.cancel_request
    ended = Task.update(**cancelled_fields(reason, now)).where(pending).execute()
    if ended:
        _close_attempts(task_id, now, TaskState.CANCELLED, f"worker lost; {reason}")
    return bool(ended)


def _close_attempts(
    task_id: str, now: Any, state: TaskState, reason: str | None, worker: str | None = None
) -> None:
    """End the open attempts of a task (of one worker, if given)."""
    condition = (Attempt.task_id == task_id) & Attempt.finished.is_null()
    if worker is not None:
        condition &= Attempt.worker == worker
    Attempt.update(finished=now, state=state.value, reason=one_line(reason)).where(
        condition
    ).execute()


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


def cancel_requested(task_id: str) -> str | None:
    """The pending cancel of a running task (who asked, when), or None."""
    with connection():
        row = Task.select(Task.cancel_request).where(Task.id == task_id).first()
        return None if row is None else row.cancel_request


def release(task_id: str, worker: str, reason: str) -> None:
    """Give a claimed task back (it will be retried), keeping the reason as its last error."""
    now = utcnow()
    with connection():
        released = (
            Task.update(
                status=TaskStatus.ACCEPTED.value,
                worker=None,
                heartbeat=None,
                error_type="TransientError",
                error_message=reason,
                queued_at=now,
                updated=now,
            )
            .where((Task.id == task_id) & (Task.worker == worker))
            .execute()
        )
        if released:
            _close_attempts(task_id, now, TaskState.FAILED, reason, worker)


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
    #: where it failed (None for a success)
    stage: Stage | None = None
    charts: Sequence[dict[str, Any]] = ()  #: ``charts.Chart.to_json()`` of each chart
    logs: Sequence[ModelLog] = ()  #: the end of each model's stdout and stderr
    #: what else went wrong after the reason (e.g. the report could not be uploaded either);
    #: kept with the message, never in the reason
    also: str | None = None

    @property
    def reason(self) -> str | None:
        """One line for people: what went wrong (the message's first line), or None."""
        if self.status is TaskStatus.OK:
            return None
        first = self.error_message.strip().split("\n", 1)[0] if self.error_message else None
        return one_line(first) or self.error_type

    @property
    def message(self) -> str | None:
        """The whole message kept: the error, then what else went wrong on a line of its own."""
        if self.also is None:
            return self.error_message
        return f"{self.error_message}\n{self.also}" if self.error_message else self.also


def finish(task_id: str, worker: str | None, outcome: Outcome) -> bool:
    """Record a final outcome; False if another worker owns the task by now."""
    if not outcome.status.final:
        raise ValueError(f"{outcome.status} is not a final status")
    now = utcnow()
    condition = Task.id == task_id
    if worker is not None:
        condition &= Task.worker == worker
    with connection(), database_proxy.atomic():
        before = Task.select(Task.created, Task.started).where(condition).first()
        finished = (
            Task.update(
                status=outcome.status.value,
                models_json=json.dumps(list(outcome.models)),
                result_location=outcome.result_location,
                result_transaction=outcome.result_transaction,
                error_type=outcome.error_type,
                error_message=outcome.message,
                error_traceback=outcome.error_traceback,
                reason=outcome.reason,
                stage=None if outcome.stage is None else outcome.stage.value,
                cancel_request=None,
                heartbeat=None,
                finished=now,
                updated=now,
            )
            .where(condition)
            .execute()
        )
        if finished:
            _close_attempts(task_id, now, outcome.status.state, outcome.reason, worker)
            replace_charts(task_id, outcome.charts)
            replace_logs(task_id, outcome.logs)
            if before is not None:
                state = outcome.status.state
                tallies.record_finish(before.created, before.started, now, state, outcome.models)
        return bool(finished)


def needing_requeue(
    requeue_after: float, stale_after: float, grace: float = 5.0, limit: int = 500
) -> list[str]:
    """Tasks whose message may be lost: never queued (after ``grace`` seconds), queued long ago
    and still waiting, or processing with a stale heartbeat and not re-queued within
    ``stale_after`` (a pending cancel among them is ended by the claim, not run)."""
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
                | (
                    (Task.status == TaskStatus.PROCESSING.value)
                    & (Task.heartbeat < stale)
                    & (Task.queued_at.is_null() | (Task.queued_at < stale))
                )
            )
            .order_by(Task.created)
            .limit(limit)
        )
        return [row.id for row in query]


def queued_within(seconds: float, limit: int = 500) -> list[str]:
    """Tasks marked queued in the last ``seconds`` that no worker has started, newest first.

    They include the rows a web process committed and marked but never published, because it
    died in between (their message never left); ``needing_requeue`` finds those only after
    ``requeue_after``. A web process re-publishes these when it starts (a repeated message is
    harmless: the claim is atomic).
    """
    since = utcnow() - timedelta(seconds=seconds)
    with connection():
        query = (
            Task.select(Task.id)
            .where((Task.status == TaskStatus.ACCEPTED.value) & (Task.queued_at >= since))
            .order_by(Task.created.desc())
            .limit(limit)
        )
        return [row.id for row in query]


def count_by_status() -> dict[str, int]:
    """How many tasks are in each status."""
    with connection():
        query = Task.select(Task.status, peewee.fn.COUNT(Task.id)).group_by(Task.status)
        rows: Iterable[tuple[str, int]] = query.tuples()  # type: ignore[assignment]
        return dict(rows)
