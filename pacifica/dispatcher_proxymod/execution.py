"""What a worker does with one task: claim it, route it, run the handler, record the outcome.

This module knows nothing of Celery: the queue calls :func:`execute` and acts on its answer,
and the ``process`` command calls it directly. Every failure ends as a recorded status with a
reason; only a transient transfer failure gives the task back for a retry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import peewee

from . import store
from .errors import ModelFailed, TaskCancelled, TransferError, UnprocessableEvent, UploadFailed
from .events import Event
from .logconfig import task_context
from .proxymod import answer
from .proxymod.handler import HandlerResult, handle
from .proxymod.validate import rejection_reasons
from .settings import Settings
from .states import Stage, TaskState, TaskStatus
from .store import Claim, Outcome
from .transfer import Transfer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Execution:
    """The answer to the queue: done, try later, or nothing to do."""

    state: str  #: "done", "retry", "busy" or "missing"
    status: TaskStatus | None = None
    countdown: float = 0.0
    reason: str | None = None


def worker_name() -> str:
    """This process's identity in the task rows."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


#: How often a running task's worker looks for an operator's cancel (at most; see _Watch).
CANCEL_POLL_SECONDS = 2.0


class _Watch:
    """While a task runs: refresh its heartbeat and watch for a cancel, in a background thread.

    When an operator asks to cancel, :attr:`cancel` is set (the sandbox then kills the model)
    and :attr:`cancel_reason` says who asked and when.
    """

    def __init__(self, task_id: str, worker: str, interval: float) -> None:
        self.task_id = task_id
        self.worker = worker
        self.interval = interval
        self.cancel = threading.Event()
        self.cancel_reason: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{task_id}", daemon=True)

    def __enter__(self) -> _Watch:
        self._look_for_cancel()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        poll = min(self.interval, CANCEL_POLL_SECONDS)
        next_beat = time.monotonic() + self.interval
        while not self._stop.wait(poll):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.interval
                    store.beat(self.task_id, self.worker)
                self._look_for_cancel()
            except Exception:  # a blip must not kill the run; the next beat may get through
                log.warning("heartbeat of task %s failed", self.task_id, exc_info=True)
            finally:
                store.close_database()

    def _look_for_cancel(self) -> None:
        if self.cancel.is_set():
            return
        reason = store.cancel_requested(self.task_id)
        if reason is not None:
            log.info("task %s: %s; stopping it", self.task_id, reason)
            self.cancel_reason = reason
            self.cancel.set()


def execute(settings: Settings, task_id: str, transfer: Transfer) -> Execution:
    """Run the task ``task_id`` to a final status, unless it is not ours to run now."""
    worker = worker_name()
    claimed = store.claim(task_id, worker, settings.stale_after_seconds)
    if claimed is Claim.MISSING:
        log.warning("task %s is not in the store; dropping its message", task_id)
        return Execution("missing")
    if claimed is Claim.FINAL:
        log.info("task %s already ended; dropping the repeated message", task_id)
        return Execution("done")
    if claimed is Claim.BUSY:
        return Execution("busy", countdown=settings.stale_after_seconds)
    task = store.get_task(task_id)
    assert task is not None
    with task_context(task_id, task.event_id):  # every line from here names the event too
        log.info("task %s started: attempt %d on %s", task_id, task.attempts, worker)
        outcome = _run(settings, task, worker, transfer)
        if isinstance(outcome, Execution):
            return outcome
        outcome = _answer(settings, task, worker, outcome, transfer)
        _record_outcome(settings, task_id, worker, outcome)
        log_end(task_id, outcome.status, outcome.reason)
        return Execution("done", status=outcome.status, reason=outcome.error_message)


def log_end(task_id: str, status: TaskStatus, reason: str | None) -> None:
    """The line that ends a task: its state in words, its status, and why."""
    state = status.state
    level = logging.INFO if state is TaskState.SUCCEEDED else logging.WARNING
    because = f": {reason}" if reason else ""
    log.log(level, "task %s ended %s (%s)%s", task_id, state.value, status.value, because)


def _answer(
    settings: Settings, task: store.Task, worker: str, outcome: Outcome, transfer: Transfer
) -> Outcome:
    """Upload the report of a task that ended rejected or failed (see proxymod/answer.py)."""
    if not answer.needs_report(outcome):
        return outcome
    try:
        event = Event.from_json(task.event_json)
        with _Watch(task.id, worker, settings.heartbeat_seconds):  # a heartbeat while it uploads
            return answer.deliver_report(settings, task.id, event, outcome, transfer)
    except Exception as exc:  # the original reason is what the task ends with, always
        log.error("task %s: the report could not be made", task.id, exc_info=exc)
        note = f"The report could not be made: {type(exc).__name__}: {exc}"
        return dataclasses.replace(outcome, also=note)


def _record_outcome(settings: Settings, task_id: str, worker: str, outcome: Outcome) -> None:
    """Record the outcome, retrying while the database is away (up to the stale bound).

    Giving up sooner would let another worker take the task over and deliver it again.
    """
    deadline = time.monotonic() + settings.stale_after_seconds
    pause = 0.5
    while True:
        try:
            store.finish(task_id, worker, outcome)
            return
        except peewee.PeeweeException:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("recording task %s failed; retrying in %g s", task_id, pause)
            store.close_database()
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _run(
    settings: Settings, task: store.Task, worker: str, transfer: Transfer
) -> Outcome | Execution:
    watch: _Watch | None = None
    try:
        event = Event.from_json(task.event_json)
        reasons = "; ".join(rejection_reasons(event, settings))
        if reasons:  # every problem at once: the route's, the configs' and the files'
            return Outcome(
                TaskStatus.UNPROCESSABLE,
                error_type="UnprocessableEvent",
                error_message=reasons,
                stage=Stage.VALIDATE,
            )
        with _Watch(task.id, worker, settings.heartbeat_seconds) as watch:
            result = handle(event, task.id, settings, transfer, cancel=watch.cancel)
        return _outcome(result)
    except TaskCancelled as exc:
        reason = (watch.cancel_reason if watch else None) or exc.reason
        return Outcome(TaskStatus.CANCELLED, error_type="Cancelled", error_message=reason)
    except UnprocessableEvent as exc:
        return Outcome(
            TaskStatus.UNPROCESSABLE,
            error_type=type(exc).__name__,
            error_message=str(exc),
            stage=Stage.VALIDATE,
        )
    except TransferError as exc:
        # transfer retries count from the operator's last retry, if any
        attempt = task.attempts - (task.retry_base or 0)
        if exc.transient and attempt <= settings.transfer_retries:
            delay = settings.retry_backoff_seconds * 2 ** max(attempt - 1, 0)
            reason = f"attempt {task.attempts} failed, retrying in {delay:g} s: {exc}"
            log.warning("task %s: %s", task.id, reason)
            store.release(task.id, worker, reason)
            return Execution("retry", countdown=delay, reason=reason)
        message = str(exc)
        if exc.transient:
            message = f"gave up after {attempt} attempts: {message}"
        return _failure(exc, message)
    except Exception as exc:
        return _failure(exc, str(exc))


def stage_of(exc: BaseException) -> Stage:
    """The stage a task ended in when ``exc`` stopped it."""
    if isinstance(exc, UnprocessableEvent):
        return Stage.VALIDATE
    if isinstance(exc, UploadFailed):
        return Stage.UPLOAD
    if isinstance(exc, TransferError):
        return Stage.DOWNLOAD
    if isinstance(exc, ModelFailed):
        return Stage.MODEL
    return Stage.INTERNAL


def _outcome(result: HandlerResult) -> Outcome:
    models: list[dict[str, Any]] = [run.to_json() for run in result.models]
    delivery = result.delivery
    return Outcome(
        TaskStatus.FAILED if result.failure else TaskStatus.OK,
        models=models,
        result_location=delivery.location if delivery else None,
        result_transaction=delivery.transaction_id if delivery else None,
        error_type="ModelFailed" if result.failure else None,
        error_message=result.failure,
        error_traceback="\n".join(
            f"model {run.model}:\n{run.traceback}" for run in result.models if run.traceback
        )
        or None,
        charts=[chart.to_json() for chart in result.charts],
        logs=result.logs,
        stage=Stage.MODEL if result.failure else None,
    )


def _failure(exc: BaseException, message: str) -> Outcome:
    log.error("task failed: %s", message, exc_info=exc)
    return Outcome(
        TaskStatus.FAILED,
        error_type=type(exc).__name__,
        error_message=message or type(exc).__name__,
        error_traceback="".join(traceback.format_exception(exc)),
        stage=stage_of(exc),
    )
