"""Retry, cancel and the attempts history in the store, on the database under test."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import Stage, TaskState, TaskStatus
from pacifica.dispatcher_proxymod.store import CancelOutcome, Claim, Outcome


def _task(example: dict[str, Any], event_id: str = "e") -> store.Task:
    document = dict(example, eventID=event_id)
    event = parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())
    return store.record_event(event, TaskStatus.ACCEPTED).task


def _make_stale(task_id: str) -> None:
    with store.connection():
        old = store.utcnow() - timedelta(seconds=120)
        store.Task.update(heartbeat=old).where(store.Task.id == task_id).execute()


def _history(task_id: str) -> list[tuple[int, str | None, str | None, str | None]]:
    return [(a.number, a.worker, a.state, a.reason) for a in store.history(task_id)]


def test_history_keeps_every_attempt_and_a_lost_worker(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = _task(example_event)
    assert store.claim(task.id, "w1", 60) is Claim.CLAIMED
    store.release(task.id, "w1", "attempt 1 failed, retrying in 1 s: Cartd is unreachable")
    assert store.claim(task.id, "w2", 60) is Claim.CLAIMED
    _make_stale(task.id)
    assert store.claim(task.id, "w3", 60) is Claim.CLAIMED
    failure = Outcome(
        TaskStatus.FAILED,
        error_type="ModelFailed",
        error_message="model m: exit 1\n",
        stage=Stage.MODEL,
    )
    assert store.finish(task.id, "w3", failure)
    assert _history(task.id) == [
        (1, "w1", "failed", "attempt 1 failed, retrying in 1 s: Cartd is unreachable"),
        (2, "w2", "failed", "worker lost: it stopped sending heartbeats"),
        (3, "w3", "failed", "model m: exit 1"),
    ]
    record = store.record(store.get_task(task.id))  # type: ignore[arg-type]
    assert (record["state"], record["stage"], record["reason"]) == (
        "failed",
        "model",
        "model m: exit 1",
    )
    assert record["attempt"] == 3 and len(record["history"]) == 3
    assert all(entry["finished"] for entry in record["history"])


def test_retry_reopens_only_final_failures(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = _task(example_event)
    assert store.retry_task(task.id).state is TaskState.WAITING  # refused
    store.claim(task.id, "w", 60)
    assert store.retry_task(task.id).state is TaskState.RUNNING
    store.finish(task.id, "w", Outcome(TaskStatus.FAILED, error_message="x", stage=Stage.UPLOAD))
    retried = store.retry_task(task.id)
    assert retried.found and retried.attempt == 2 and retried.state is None
    again = store.get_task(task.id)
    assert again is not None and again.state is TaskState.WAITING
    assert again.reason is None and again.stage is None and again.finished is None
    assert again.retry_base == 1
    assert store.claim(task.id, "w", 60) is Claim.CLAIMED
    store.finish(task.id, "w", Outcome(TaskStatus.OK))
    assert store.retry_task(task.id).state is TaskState.SUCCEEDED
    assert not store.retry_task("00000000-0000-4000-8000-000000000000").found


def test_cancel_of_a_waiting_task_ends_it_and_no_claim_runs_it(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = _task(example_event)
    answer = store.cancel_task(task.id, "cancelled by alice at 2026-12-01T00:00:00Z")
    assert answer.outcome is CancelOutcome.CANCELLED
    assert store.claim(task.id, "w", 60) is Claim.FINAL
    assert store.needing_requeue(0, 0, grace=0) == []
    got = store.get_task(task.id)
    assert got is not None and got.status == "499 Cancelled"
    assert got.reason == "cancelled by alice at 2026-12-01T00:00:00Z"
    assert store.cancel_task(task.id, "again").outcome is CancelOutcome.FINAL


def test_cancel_of_a_running_task_is_pending_until_its_worker_ends_it(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = _task(example_event)
    store.claim(task.id, "w", 60)
    assert store.cancel_requested(task.id) is None
    assert store.cancel_task(task.id, "cancelled by bob").outcome is CancelOutcome.CANCELLING
    assert store.cancel_task(task.id, "cancelled by carol").outcome is CancelOutcome.CANCELLING
    assert store.cancel_requested(task.id) == "cancelled by bob"
    store.finish(
        task.id,
        "w",
        Outcome(TaskStatus.CANCELLED, error_type="Cancelled", error_message="cancelled by bob"),
    )
    got = store.get_task(task.id)
    assert got is not None and got.state is TaskState.CANCELLED and got.cancel_request is None
    assert _history(task.id) == [(1, "w", "cancelled", "cancelled by bob")]


def test_a_cancelled_task_whose_worker_was_lost_is_not_run_again(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = _task(example_event)
    store.claim(task.id, "w1", 60)
    store.cancel_task(task.id, "cancelled by dave")
    _make_stale(task.id)
    assert task.id in store.needing_requeue(600, 60)
    assert store.claim(task.id, "w2", 60) is Claim.FINAL
    got = store.get_task(task.id)
    assert (
        got is not None and got.state is TaskState.CANCELLED and got.reason == "cancelled by dave"
    )
    assert _history(task.id) == [(1, "w1", "cancelled", "worker lost; cancelled by dave")]
    assert store.needing_requeue(0, 0, grace=0) == []
