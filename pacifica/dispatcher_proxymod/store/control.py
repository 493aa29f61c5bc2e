"""An operator's changes to a task: run it again, or cancel it. Each is one atomic UPDATE.

A waiting task is cancelled at once (its message, when a worker takes it, finds it final). A
running one gets a pending ``cancel_request`` that its worker watches; the worker kills the
model and records the task cancelled (or, if the worker is lost, the next claim does).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..states import TaskState, TaskStatus
from .db import connection, reconnecting, utcnow
from .lifecycle import cancelled_fields
from .models import Task

RETRYABLE = [state.status.value for state in TaskState if state.retryable]


@dataclass(frozen=True)
class Retried:
    """A retry's answer: the attempt the task will run as, or the task's state if refused."""

    found: bool
    attempt: int | None = None  #: the number of the attempt to come; None: refused
    state: TaskState | None = None  #: the task's state when refused


@reconnecting
def retry_task(task_id: str) -> Retried:
    """Put a failed, rejected or cancelled task back to waiting, its last outcome cleared."""
    now = utcnow()
    with connection():
        reopened = (
            Task.update(
                status=TaskStatus.ACCEPTED.value,
                reason=None,
                stage=None,
                error_type=None,
                error_message=None,
                error_traceback=None,
                models_json="[]",
                result_location=None,
                result_transaction=None,
                worker=None,
                heartbeat=None,
                cancel_request=None,
                queued_at=None,
                started=None,
                finished=None,
                retry_base=Task.attempts,
                updated=now,
            )
            .where((Task.id == task_id) & Task.status.in_(RETRYABLE))
            .execute()
        )
        task = Task.get_or_none(Task.id == task_id)
    if task is None:
        return Retried(found=False)
    if not reopened:
        return Retried(found=True, state=task.state)
    return Retried(found=True, attempt=task.attempts + 1)


class CancelOutcome(enum.Enum):
    """What a cancel did."""

    CANCELLED = "cancelled"  #: it was waiting: it is cancelled now and will never run
    CANCELLING = "cancelling"  #: it is running: its worker stops it within seconds
    FINAL = "final"  #: it had already ended: nothing to cancel
    MISSING = "missing"  #: no such task


@dataclass(frozen=True)
class Cancelled:
    """A cancel's answer and the task's state after it."""

    outcome: CancelOutcome
    state: TaskState | None = None


@reconnecting
def cancel_task(task_id: str, reason: str) -> Cancelled:
    """Cancel a waiting task now, or ask the worker of a running one to stop it."""
    now = utcnow()
    with connection():
        ended = (
            Task.update(**cancelled_fields(reason, now))
            .where((Task.id == task_id) & (Task.status == TaskStatus.ACCEPTED.value))
            .execute()
        )
        if ended:
            return Cancelled(CancelOutcome.CANCELLED, TaskState.CANCELLED)
        Task.update(cancel_request=reason, updated=now).where(
            (Task.id == task_id)
            & (Task.status == TaskStatus.PROCESSING.value)
            & Task.cancel_request.is_null()
        ).execute()
        task = Task.get_or_none(Task.id == task_id)
    if task is None:
        return Cancelled(CancelOutcome.MISSING)
    if task.task_status is TaskStatus.PROCESSING:
        return Cancelled(CancelOutcome.CANCELLING, task.state)
    return Cancelled(CancelOutcome.FINAL, task.state)
