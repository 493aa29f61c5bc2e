"""The one task search (store.find_tasks) and its parameters, on the database under test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.errors import InvalidParameter
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskState, TaskStatus
from pacifica.dispatcher_proxymod.store import Outcome, TaskQuery


def _record(example: dict[str, Any], event_id: str, transaction: int = 67) -> store.Task:
    document = json.loads(json.dumps(example))
    document["eventID"] = event_id
    for entry in document["data"]:
        if entry.get("destinationTable") == "Transactions._id":
            entry["value"] = transaction
    event = parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())
    return store.record_event(event, TaskStatus.ACCEPTED).task


def _ids(query: TaskQuery) -> list[str]:
    return [task.event_id for task in store.find_tasks(query).tasks]


def test_filters_by_state_time_and_text(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    names = ["alpha", "beta", "gamma"]
    tasks = {name: _record(example_event, name, n) for n, name in enumerate(names, 900)}
    assert tasks["alpha"].input_transaction == "900"
    store.claim(tasks["alpha"].id, "w", 60)
    store.finish(tasks["alpha"].id, "w", Outcome(TaskStatus.FAILED, error_message="boom\nline 2"))
    store.claim(tasks["beta"].id, "w", 60)
    old = store.utcnow() - timedelta(days=3)
    with store.connection():
        store.Task.update(created=old).where(store.Task.id == tasks["gamma"].id).execute()

    assert _ids(TaskQuery(states=(TaskState.FAILED,))) == ["alpha"]
    assert _ids(TaskQuery(states=(TaskState.FAILED, TaskState.RUNNING))) == ["beta", "alpha"]
    assert _ids(TaskQuery(states=(TaskState.CANCELLED,))) == []
    assert _ids(TaskQuery(since=old + timedelta(seconds=1))) == ["beta", "alpha"]
    assert _ids(TaskQuery(until=old + timedelta(seconds=1))) == ["gamma"]
    assert _ids(TaskQuery(q="901")) == ["beta"]  # the input transaction
    assert _ids(TaskQuery(q="GAMM")) == ["gamma"]  # the event id, case-insensitive
    assert len(_ids(TaskQuery(q="PACIFICA.ORG/transactions?_id="))) == 3  # the source
    assert _ids(TaskQuery(q="l_h")) == [] and _ids(TaskQuery(q="%")) == []  # no wildcards
    failed = store.get_task(tasks["alpha"].id)
    assert failed is not None and failed.reason == "boom"

    counts = store.counts_by_state()
    assert counts[TaskState.FAILED] == 1 and counts[TaskState.RUNNING] == 1
    assert counts[TaskState.WAITING] == 1 and counts[TaskState.SUCCEEDED] == 0
    assert set(counts) == set(TaskState)
    recent = store.counts_by_state(TaskQuery(since=old + timedelta(seconds=1)))
    assert recent[TaskState.WAITING] == 0


def test_pages_are_newest_first_and_counted(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    for n in range(5):
        _record(example_event, f"e{n}")
    page = store.find_tasks(TaskQuery(page=2, size=2))
    assert [t.event_id for t in page.tasks] == ["e2", "e1"]
    assert page.total == 5 and page.more
    assert not store.find_tasks(TaskQuery(page=3, size=2)).more


def test_parameters_are_read_from_text() -> None:
    query = TaskQuery.from_params(
        {
            "state": ["failed", "Rejected"],
            "since": "2026-12-01T10:00:00+01:00",
            "until": "2026-12-02",
            "q": "67",
            "page": "2",
            "size": "10",
        },
        default_size=50,
    )
    assert query.states == (TaskState.FAILED, TaskState.REJECTED)
    assert query.since == datetime(2026, 12, 1, 9, 0)
    assert query.until == datetime(2026, 12, 2)
    assert (query.q, query.page, query.size) == ("67", 2, 10)
    assert "state=failed&state=rejected" in query.params(3) and "page=3" in query.params(3)
    assert TaskQuery.from_params({}, default_size=7).size == 7


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"status": "failed"}, "status"),
        ({"state": "broken"}, "state"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"page": "0"}, "page"),
        ({"page": ["1", "2"]}, "page"),
        ({"size": "1001"}, "size"),
        ({"size": "x"}, "size"),
        ({"q": "a\x00b"}, "q"),
        ({"q": "x" * 257}, "q"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        TaskQuery.from_params(params, default_size=50)
    assert raised.value.name == name
    assert str(raised.value).startswith(f"{name}: ")
