"""Logs people and machines can read: text or JSON lines, each naming the task it is about."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import requests
from conftest import edited_event
from httpserver import serving
from test_e2e import start_worker, stop_worker, wait_final

from pacifica.dispatcher_proxymod import logconfig
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app


def _capture(settings: Settings) -> tuple[logging.Logger, io.StringIO]:
    handler = logconfig.configure(settings)
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    return logging.getLogger("pacifica.test"), stream


def test_flush_writes_the_buffered_lines_at_once(settings: Settings) -> None:
    """What an exit that skips Python's clean-up calls: the lines are written now."""
    handler = logconfig.configure(settings, buffered=True)
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        for number in range(3):
            logging.getLogger("pacifica.test").info("line %d", number)
        logconfig.flush()
        lines = stream.getvalue().splitlines()
        assert [f"line {n}" in line for n, line in enumerate(lines)] == [True] * 3, lines
    finally:
        logconfig.configure(settings)


def test_json_lines_carry_the_task_and_event(settings: Settings) -> None:
    log, stream = _capture(settings.with_changes(log_format="json"))
    log.info("outside")
    with logconfig.task_context("t-1", "e-1"):
        log.warning("inside %s", "a task")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["task_id"] is None and lines[0]["message"] == "outside"
    assert lines[1] == {
        "time": lines[1]["time"],
        "level": "WARNING",
        "logger": "pacifica.test",
        "task_id": "t-1",
        "event_id": "e-1",
        "message": "inside a task",
    }
    assert lines[1]["time"].endswith("+00:00")
    assert "ValueError: boom" in lines[2]["exception"]


def test_text_lines_name_the_task(settings: Settings) -> None:
    log, stream = _capture(settings)
    with logconfig.task_context("t-2", "e-2"):
        log.info("working")
        log.info("task t-2 ended")
    first, second = stream.getvalue().splitlines()
    assert first.endswith('pacifica.test: working task=t-2 event="e-2"')
    assert "task=" not in second  # the message names it already


def test_celery_success_line_is_dropped(settings: Settings) -> None:
    _, stream = _capture(settings)
    trace = logging.getLogger("celery.app.trace")
    trace.info("Task %s[%s] succeeded in %ss: %r", "receive", "x", 1.0, "failed")
    trace.error("Task %s[%s] raised unexpected: %r", "receive", "x", "boom")
    assert "succeeded" not in stream.getvalue() and "raised unexpected" in stream.getvalue()


def test_worker_writes_json_lines_about_a_failed_task(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Path
) -> None:
    """A real worker and real HTTP: every log line is JSON, the lines about the task name
    it, the last one gives its state and reason, and nothing says it succeeded."""
    settings = open_store.with_changes(log_format="json")
    failing = edited_event(
        example_event, "json-logs", values={"proxymod.config_2.PROJECT.failure": "1"}
    )
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        with serving(create_app(settings)) as url:
            answer = requests.post(f"{url}/receive", json=failing, timeout=30)
            task_id = answer.json()["taskID"]
            assert wait_final(url, task_id) == "500 Internal Server Error"
    finally:
        stop_worker(worker)
    records, plain = [], []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        elif line.strip():
            plain.append(line)
    # Celery's own shutdown notices are printed, not logged
    assert all("shutdown" in line.lower() or "exited with" in line for line in plain), plain
    ours = [r for r in records if r["task_id"] == task_id]
    assert ours and all(r["event_id"] in (None, "json-logs") for r in ours)
    mentioning = [r for r in records if task_id in r["message"]]
    assert all(r["task_id"] == task_id for r in mentioning), mentioning
    end = [r for r in ours if " ended " in r["message"]]
    assert len(end) == 1 and end[0]["level"] == "WARNING" and end[0]["event_id"] == "json-logs"
    assert f"task {task_id} ended failed (500 Internal Server Error): " in end[0]["message"]
    assert "You raised an error on purpose" in end[0]["message"]
    assert not [r for r in records if "succeeded" in r["message"]]
