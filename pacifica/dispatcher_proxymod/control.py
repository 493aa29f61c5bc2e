"""An operator's retry and cancel, the one code path of ``POST /retry``, ``POST /cancel`` and
the ``retry`` and ``cancel`` commands.

Retry puts a failed, rejected or cancelled task back to waiting and queues it: it runs again
from its stored event (the inputs downloaded afresh) as its next attempt, its history kept.
Cancel ends a waiting task at once; a running one is stopped by its worker within seconds
(the model's processes killed, nothing uploaded). Either way it ends ``cancelled`` with a
reason that names who cancelled it and when, and nothing but a retry runs it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery import Celery

from . import store
from .errors import TaskConflict, TaskNotFound
from .queue import publish
from .states import TaskState
from .store import CancelOutcome
from .store.shape import iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retry:
    """A retry that was accepted: the task runs again as attempt ``attempt``."""

    task_id: str
    attempt: int


@dataclass(frozen=True)
class Cancel:
    """A cancel that was accepted: ``state`` is ``cancelled`` (it was waiting) or ``running``
    (its worker stops it within seconds)."""

    task_id: str
    state: TaskState
    reason: str


def retry(celery_app: Celery, task_id: str) -> Retry:
    """Run a failed, rejected or cancelled task again; TaskNotFound or TaskConflict if not."""
    retried = store.retry_task(task_id)
    if not retried.found:
        raise TaskNotFound(task_id)
    if retried.attempt is None:
        state = retried.state.value if retried.state else "unknown"
        raise TaskConflict(
            task_id,
            state,
            f"task {task_id} is {state}: only failed, rejected or cancelled tasks can be retried",
        )
    log.info("task %s retried by an operator: attempt %d queued", task_id, retried.attempt)
    publish(celery_app, task_id)  # if the broker is down, recovery queues it later
    return Retry(task_id, retried.attempt)


def cancel(task_id: str, who: str) -> Cancel:
    """Cancel a waiting or running task on ``who``'s behalf; TaskNotFound or TaskConflict
    (already final) if not."""
    reason = f"cancelled by {who} at {iso(store.utcnow())}"
    answer = store.cancel_task(task_id, reason)
    if answer.outcome is CancelOutcome.MISSING:
        raise TaskNotFound(task_id)
    state = answer.state or TaskState.CANCELLED
    if answer.outcome is CancelOutcome.FINAL:
        raise TaskConflict(
            task_id, state.value, f"task {task_id} already ended ({state.value}): nothing to cancel"
        )
    if answer.outcome is CancelOutcome.CANCELLING:
        log.info("task %s: %s; its worker stops it", task_id, reason)
    else:
        log.info("task %s: %s before it ran", task_id, reason)
    return Cancel(task_id, state, reason)
