"""The task store on the database under test (SQLite, PostgreSQL or MariaDB)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import peewee

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.store import Claim, Outcome


def _event(document: dict[str, Any], event_id: str = "metadata.ingest.1") -> Any:
    document = dict(document, eventID=event_id)
    return parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())


def test_record_is_unique_per_source_and_id(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    first = store.record_event(_event(example_event), TaskStatus.ACCEPTED, route="proxymod")
    again = store.record_event(_event(example_event), TaskStatus.ACCEPTED, route="proxymod")
    other = store.record_event(_event(example_event, "other"), TaskStatus.ACCEPTED)
    assert first.created and not again.created and other.created
    assert again.task.id == first.task.id
    assert other.task.id != first.task.id
    assert store.list_tasks(1, 10)[1] == 2


def test_unprocessable_is_recorded_final_with_reason(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    recorded = store.record_event(
        _event(example_event), TaskStatus.UNPROCESSABLE, reason="no route"
    )
    record = store.record(store.get_task(recorded.task.id))  # type: ignore[arg-type]
    assert record["status"] == "422 Unprocessable Entity"
    assert record["error"]["message"] == "no route"
    assert record["finished"] is not None
    assert store.claim(recorded.task.id, "w", 60) is Claim.FINAL


def test_claim_is_exclusive_until_the_heartbeat_is_stale(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = store.record_event(_event(example_event), TaskStatus.ACCEPTED).task
    assert store.claim(task.id, "worker-a", 60) is Claim.CLAIMED
    assert store.claim(task.id, "worker-b", 60) is Claim.BUSY
    assert store.beat(task.id, "worker-a")
    assert not store.beat(task.id, "worker-b")
    with store.connection():
        old = store.utcnow() - timedelta(seconds=120)
        store.Task.update(heartbeat=old).where(store.Task.id == task.id).execute()
    assert store.claim(task.id, "worker-b", 60) is Claim.CLAIMED
    assert not store.finish(task.id, "worker-a", Outcome(TaskStatus.OK))
    assert store.finish(task.id, "worker-b", Outcome(TaskStatus.OK, models=[{"model": "m"}]))
    got = store.get_task(task.id)
    assert got is not None and got.status == "200 OK" and got.attempts == 2
    assert store.record(got)["models"] == [{"model": "m"}]
    assert store.claim("00000000-0000-0000-0000-000000000000", "w", 60) is Claim.MISSING


def test_concurrent_claims_give_one_owner(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = store.record_event(_event(example_event), TaskStatus.ACCEPTED).task
    results: list[Claim] = []

    def grab(name: str) -> None:
        try:
            results.append(store.claim(task.id, name, 60))
        finally:
            store.close_database()

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(Claim.CLAIMED) == 1
    assert results.count(Claim.BUSY) == 7


def test_release_makes_the_task_claimable_again(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = store.record_event(_event(example_event), TaskStatus.ACCEPTED).task
    store.claim(task.id, "w", 60)
    store.release(task.id, "w", "Cartd unreachable")
    got = store.get_task(task.id)
    assert got is not None and got.status == "202 Accepted"
    assert got.error_message == "Cartd unreachable"
    assert store.claim(task.id, "w2", 60) is Claim.CLAIMED


def test_needing_requeue_finds_unqueued_and_stale(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    unqueued = store.record_event(_event(example_event, "a"), TaskStatus.ACCEPTED).task
    queued = store.record_event(_event(example_event, "b"), TaskStatus.ACCEPTED).task
    stale = store.record_event(_event(example_event, "c"), TaskStatus.ACCEPTED).task
    done = store.record_event(_event(example_event, "d"), TaskStatus.UNPROCESSABLE).task
    store.mark_queued(queued.id)
    store.claim(stale.id, "w", 60)
    assert store.needing_requeue(600, 60, grace=60) == []
    with store.connection():
        old = store.utcnow() - timedelta(seconds=120)
        store.Task.update(created=old).where(store.Task.id == unqueued.id).execute()
        store.Task.update(heartbeat=old).where(store.Task.id == stale.id).execute()
    found = store.needing_requeue(600, 60, grace=60)
    assert sorted(found) == sorted([unqueued.id, stale.id])
    assert queued.id not in found and done.id not in found
    # re-queued, a stale task waits for a worker: not re-queued again within the stale bound
    store.mark_queued_many([unqueued.id, stale.id])
    assert store.needing_requeue(600, 60, grace=60) == []
    with store.connection():
        store.Task.update(queued_at=old).where(store.Task.id == stale.id).execute()
    assert store.needing_requeue(600, 60, grace=60) == [stale.id]


def test_marking_queued_changes_no_setting_of_the_connection(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = store.record_event(_event(example_event, "m"), TaskStatus.ACCEPTED).task
    assert store.mark_queued_many([task.id, "no-such-task"]) == 1
    with store.connection():
        row = store.Task.get_by_id(task.id)
        if isinstance(store.database_proxy.obj, peewee.PostgresqlDatabase):
            # the mark's own transaction skipped the WAL flush (SET LOCAL), not the session
            setting = store.database_proxy.execute_sql("SHOW synchronous_commit").fetchone()
            assert setting[0] == "on"
    assert row.queued_at is not None


def test_a_mark_is_taken_back_only_from_tasks_still_waiting(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    waiting = store.record_event(_event(example_event, "w"), TaskStatus.ACCEPTED).task
    running = store.record_event(_event(example_event, "r"), TaskStatus.ACCEPTED).task
    store.mark_queued_many([waiting.id, running.id])
    store.claim(running.id, "worker", 60)
    assert store.clear_queued_many([waiting.id, running.id, "no-such-task"]) == 1
    after = {task.id: store.get_task(task.id) for task in (waiting, running)}
    assert after[waiting.id] is not None and after[waiting.id].queued_at is None
    assert after[running.id] is not None and after[running.id].queued_at is not None
    assert store.clear_queued_many([]) == 0


def test_queued_within_is_what_waits_since_then_newest_first(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    tasks = [
        store.record_event(_event(example_event, f"q{n}"), TaskStatus.ACCEPTED).task
        for n in range(4)
    ]
    never = store.record_event(_event(example_event, "never"), TaskStatus.ACCEPTED).task
    store.mark_queued_many([task.id for task in tasks])
    with store.connection():
        for age, task in enumerate(tasks):  # q0 is the newest
            created = store.utcnow() - timedelta(seconds=age)
            store.Task.update(created=created).where(store.Task.id == task.id).execute()
        old = store.utcnow() - timedelta(seconds=120)
        store.Task.update(queued_at=old).where(store.Task.id == tasks[3].id).execute()
    store.claim(tasks[2].id, "worker", 60)
    assert store.queued_within(60) == [tasks[0].id, tasks[1].id]
    assert store.queued_within(60, limit=1) == [tasks[0].id]
    assert never.id not in store.queued_within(600)


def test_list_is_newest_first_and_paginated(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    ids = [
        store.record_event(_event(example_event, str(i)), TaskStatus.ACCEPTED).task.id
        for i in range(5)
    ]
    page1, total = store.list_tasks(1, 2)
    page3, _ = store.list_tasks(3, 2)
    assert total == 5
    assert [t.id for t in page1] == ids[::-1][:2]
    assert [t.id for t in page3] == ids[:1]
    assert store.count_by_status() == {"202 Accepted": 5}


def test_updated_changes_with_state(open_store: Settings, example_event: dict[str, Any]) -> None:
    task = store.record_event(_event(example_event), TaskStatus.ACCEPTED).task
    with store.connection():
        old = store.utcnow() - timedelta(seconds=30)
        store.Task.update(updated=old).where(store.Task.id == task.id).execute()
    store.claim(task.id, "w", 60)
    got = store.get_task(task.id)
    assert got is not None and got.updated > old and got.started is not None


def test_event_key_is_fixed_length_and_distinct() -> None:
    assert len(store.event_key("s" * 5000, "i" * 5000)) == 64
    assert store.event_key("a", "bc") != store.event_key("ab", "c")


def test_processes_starting_together_create_the_table_once(settings: Settings) -> None:
    import subprocess
    import sys

    code = (
        "from pacifica.dispatcher_proxymod import store;"
        "from pacifica.dispatcher_proxymod.settings import Settings;"
        f"store.open_database(Settings(database_url={settings.database_url!r}));"
        "print(store.list_tasks(1, 1)[1] >= 0)"
    )
    if not settings.database_url.startswith("sqlite"):
        store.open_database(settings)
        with store.connection():
            store.database_proxy.obj.drop_tables([store.Task, store.Attempt])
        store.close_database()
    starters = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in starters]
    assert [p.returncode for p in starters] == [0, 0, 0, 0]
    assert outputs == ["True"] * 4


def test_charts_are_kept_with_the_final_outcome(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task = store.record_event(_event(example_event), TaskStatus.ACCEPTED).task
    assert store.claim(task.id, "w", 60) is Claim.CLAIMED
    big = {"model": "m", "config": "config_1", "series": [{"label": "x" * 70_000}]}
    charts = [{"model": "m", "config": f"config_{n}", "series": []} for n in range(25)]
    assert store.finish(task.id, "w", Outcome(TaskStatus.OK, charts=[big, *charts]))
    kept = store.charts_of(task.id)
    assert kept == [big, *charts]  # over 64 KiB in one row: LONGTEXT on MariaDB
    other = store.record_event(_event(example_event, "other"), TaskStatus.ACCEPTED).task
    assert store.charts_of(other.id) == []
