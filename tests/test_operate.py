"""The operator's commands (tasks, show, retry, cancel) as a user runs them: the console script
in its own process, with the service's settings from the environment, on the database and
broker under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings, environment_for
from pacifica.dispatcher_proxymod.states import Stage, TaskStatus
from pacifica.dispatcher_proxymod.store import Outcome


def _command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pacifica.dispatcher_proxymod", *args],
        env=environment_for(settings, os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _task(example: dict[str, Any], event_id: str) -> str:
    document = dict(example, eventID=event_id)
    event = parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())
    return store.record_event(event, TaskStatus.ACCEPTED).task.id


def test_list_show_retry_and_cancel_from_the_command_line(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    failed = _task(example_event, "will-fail")
    waiting = _task(example_event, "will-wait")
    store.claim(failed, "worker-1", 60)
    reason = "model tight_coupling: exited with status 1: You raised an error on purpose"
    store.finish(
        failed, "worker-1", Outcome(TaskStatus.FAILED, error_message=reason, stage=Stage.MODEL)
    )

    listed = _command(open_store, "tasks", "--state", "failed")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "TASK",
        "STATE",
        "STAGE",
        "TRY",
        "RECEIVED",
        "TRANSACTION",
        "REASON",
    ]
    assert lines[1].split()[:4] == [failed, "failed", "model", "1"]
    assert "model tight_coupling: exited with status 1" in lines[1]
    assert lines[-1] == "1 of 1 task(s), page 1"
    every = _command(open_store, "tasks", "--since", "2000-01-01", "--json")
    assert {t["taskID"] for t in json.loads(every.stdout)["tasks"]} == {failed, waiting}
    bad = _command(open_store, "tasks", "--state", "broken")
    assert bad.returncode == 2 and "state: 'broken' is not a state" in bad.stderr

    shown = _command(open_store, "show", failed)
    assert shown.returncode == 0, shown.stderr
    assert "state:            failed" in shown.stdout and "stage:            model" in shown.stdout
    assert "worker-1" in shown.stdout and "history:" in shown.stdout

    cancelled = _command(open_store, "cancel", waiting)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "(command line) at " in cancelled.stdout and "it will not run" in cancelled.stdout
    task = store.get_task(waiting)
    assert task is not None and task.status == "499 Cancelled"
    assert task.reason is not None and "(command line)" in task.reason
    again = _command(open_store, "cancel", waiting)
    assert again.returncode == 2 and "already ended (cancelled)" in again.stderr

    retried = _command(open_store, "retry", failed)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"task {failed} queued again as attempt 2"
    task = store.get_task(failed)
    assert task is not None and task.status == "202 Accepted" and task.queued_at is not None
    refused = _command(open_store, "retry", failed)
    assert refused.returncode == 2 and "is waiting" in refused.stderr
    missing = _command(open_store, "show", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 2 and "no task" in missing.stderr
    malformed = _command(open_store, "retry", "nope")
    assert malformed.returncode == 2 and "not a task id" in malformed.stderr
