"""Purge and retention on the database under test: only final tasks, old enough, go."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_e2e import start_worker, stop_worker

from pacifica.dispatcher_proxymod import cli, retention, store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.modellog import ModelLog
from pacifica.dispatcher_proxymod.settings import Settings, environment_for
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.store import Claim, Outcome


def _task(example_event: dict[str, Any], name: str, status: TaskStatus, age_days: float) -> str:
    body = json.dumps(dict(example_event, eventID=name)).encode()
    event = parse_http({"Content-Type": "application/json"}, body)
    task_id = store.record_event(event, TaskStatus.ACCEPTED).task.id
    if status is not TaskStatus.ACCEPTED:
        assert store.claim(task_id, "w", 60) is Claim.CLAIMED
    if status.final:
        logs = [ModelLog("m", "stdout", "hello\n"), ModelLog("m", "stderr", "")]
        outcome = Outcome(status, logs=logs, charts=[{"model": "m", "series": []}])
        assert store.finish(task_id, "w", outcome)
    old = store.utcnow() - timedelta(days=age_days)
    with store.connection():
        store.Task.update(created=old, finished=old if status.final else None).where(
            store.Task.id == task_id
        ).execute()
    return task_id


def _states(example_event: dict[str, Any]) -> dict[str, str]:
    return {
        "old ok": _task(example_event, "old-ok", TaskStatus.OK, 10),
        "old failed": _task(example_event, "old-failed", TaskStatus.FAILED, 10),
        "old rejected": _task(example_event, "old-rejected", TaskStatus.UNPROCESSABLE, 10),
        "old waiting": _task(example_event, "old-waiting", TaskStatus.ACCEPTED, 10),
        "old running": _task(example_event, "old-running", TaskStatus.PROCESSING, 10),
        "new ok": _task(example_event, "new-ok", TaskStatus.OK, 0.5),
    }


def _left() -> set[str]:
    with store.connection():
        return {row.id for row in store.Task.select(store.Task.id)}


def test_purge_deletes_only_old_final_tasks_and_their_rows(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    tasks = _states(example_event)
    kept_dir = open_store.work_dir / tasks["old failed"]
    kept_dir.mkdir(parents=True)
    (kept_dir / "stderr.log").write_text("kept for a failed task")
    purged = retention.purge(open_store, 1)
    assert purged.tasks == 3 and purged.work_dirs == 1 and not kept_dir.exists()
    assert _left() == {tasks[k] for k in ("old waiting", "old running", "new ok")}
    assert store.logs_of(tasks["old ok"]) == [] and store.charts_of(tasks["old ok"]) == []
    assert store.logs_of(tasks["new ok"])[0].text == "hello\n"
    # 0 days: every final task, still never a waiting or running one
    assert retention.purge(open_store, 0).tasks == 1
    assert _left() == {tasks["old waiting"], tasks["old running"]}
    assert store.logs_of(tasks["new ok"]) == []


def test_purge_sweeps_work_dirs_whose_task_is_gone(open_store: Settings) -> None:
    orphan = open_store.work_dir / str(uuid.uuid4())
    fresh = open_store.work_dir / str(uuid.uuid4())
    other = open_store.work_dir / "not-a-task"
    for folder in (orphan, fresh, other):
        folder.mkdir(parents=True)
    long_ago = time.time() - 2 * retention.RETENTION_INTERVAL_SECONDS
    os.utime(orphan, (long_ago, long_ago))
    assert retention.purge(open_store, 0).work_dirs == 1
    assert not orphan.exists() and fresh.exists() and other.exists()


def test_purge_command_prints_how_many(
    open_store: Settings,
    example_event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _states(example_event)
    for key, value in environment_for(open_store, {}).items():
        monkeypatch.setenv(key, value)
    assert cli.main(["purge", "--older-than", "1"]) == 0
    assert capsys.readouterr().out.strip() == "purged 3 task(s); removed 0 work directories"
    assert cli.main(["purge", "--older-than", "-1"]) == 2


def test_workers_apply_the_retention_on_their_own(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Path
) -> None:
    tasks = _states(example_event)
    worker = start_worker(open_store.with_changes(retention_days=1.0), tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 120
        while tasks["old ok"] in _left():
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        stop_worker(worker)
    left = _left()
    assert tasks["old failed"] not in left and tasks["old rejected"] not in left
    assert {tasks["old waiting"], tasks["new ok"]} <= left
    assert "purged 3 final task(s)" in (tmp_path / "worker.log").read_text()
