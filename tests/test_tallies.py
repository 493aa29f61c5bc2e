"""The fleet-wide figures kept in the store: always equal to counting the tasks themselves."""

from __future__ import annotations

import json
from typing import Any

from pacifica.dispatcher_proxymod import retention, store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.store import Claim, Outcome, tallies


def _record(example_event: dict[str, Any], name: str) -> str:
    body = json.dumps(dict(example_event, eventID=name)).encode()
    event = parse_http({"Content-Type": "application/json"}, body)
    return store.record_event(event, TaskStatus.ACCEPTED).task.id


def _counted() -> dict[str, int]:
    """The states as a full count of the task table finds them."""
    counts = {state: 0 for state in tallies.read().states}
    for status, tasks in store.count_by_status().items():
        counts[TaskStatus(status).state.value] += tasks
    return counts


def test_state_counts_follow_every_change(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    ids = [_record(example_event, f"e{n}") for n in range(6)]
    assert tallies.read().states == _counted() and _counted()["waiting"] == 6
    for task_id in ids[:4]:
        assert store.claim(task_id, "w", 60) is Claim.CLAIMED
    store.release(ids[3], "w", "transient")
    store.finish(ids[0], "w", Outcome(TaskStatus.OK))
    store.finish(ids[1], "w", Outcome(TaskStatus.FAILED, error_message="boom"))
    # a change made by hand, outside this code, counts too
    with store.connection():
        store.Task.update(status=TaskStatus.CANCELLED.value).where(
            store.Task.id == ids[4]
        ).execute()
    expected = {"waiting": 2, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 1}
    assert tallies.read().states == _counted() == dict.fromkeys(_counted(), 0) | expected
    retention.purge(open_store, 0)
    assert tallies.read().states == _counted() and _counted()["succeeded"] == 0


def test_histograms_of_finished_tasks(open_store: Settings, example_event: dict[str, Any]) -> None:
    task_id = _record(example_event, "timed")
    assert store.claim(task_id, "w", 60) is Claim.CLAIMED
    runs = [
        {"model": "a", "outcome": "ok", "duration_seconds": 0.3},
        {"model": "b", "outcome": "timeout", "duration_seconds": 700.0},
    ]
    store.finish(task_id, "w", Outcome(TaskStatus.FAILED, models=runs))
    figures = tallies.read().histograms
    by_outcome = {h.label: h for h in figures[tallies.MODEL_DURATION]}
    assert by_outcome["ok"].count == 1 and by_outcome["ok"].total == 0.3
    assert dict(by_outcome["ok"].buckets)["0.1"] == 0 and dict(by_outcome["ok"].buckets)["0.5"] == 1
    assert by_outcome["timeout"].count == 1 and dict(by_outcome["timeout"].buckets)["600.0"] == 0
    assert by_outcome["error"].count == 0
    tasks = {h.label: h for h in figures[tallies.TASK_DURATION]}
    assert tasks["failed"].count == 1 and tasks["succeeded"].count == 0
    assert figures[tallies.QUEUE_WAIT][0].count == 1


def test_installing_again_keeps_the_counts(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    _record(example_event, "kept")
    store.open_database(open_store)  # a second process starting
    assert tallies.read().states["waiting"] == 1 == _counted()["waiting"]
