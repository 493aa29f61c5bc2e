"""End to end: the example event over real HTTP, through a real Celery worker process.

Runs on the database and broker under test (see conftest): SQLite + the embedded broker by
default, PostgreSQL + RabbitMQ or Redis in CI. Output CSVs are checked byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import EXAMPLE_DATA, edited_event
from expected import expected_outputs
from httpserver import serving
from workers import worker_command

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.settings import Settings, environment_for
from pacifica.dispatcher_proxymod.web import create_app


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a worker process the same settings as the test."""
    return environment_for(settings, os.environ)


def start_worker(settings: Settings, log: Path, concurrency: int = 1) -> subprocess.Popen[bytes]:
    """A real Celery worker in its own process group."""
    command = worker_command("test", concurrency)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env=worker_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown, then kill the group if it lingers."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_final(base_url: str, task_id: str, timeout: float = 240) -> str:
    """Poll ``/status`` until the task ends (bounded)."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = requests.get(f"{base_url}/status/{task_id}", timeout=10).json()
        if status.split()[0] in ("200", "422", "500"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still {status!r} after {timeout} s")


@pytest.fixture
def service(open_store: Settings, tmp_path: Path) -> Iterator[tuple[str, Settings, Path]]:
    log = tmp_path / "worker.log"
    worker = start_worker(open_store, log)
    try:
        with serving(create_app(open_store)) as url:
            yield url, open_store, log
    finally:
        stop_worker(worker)


def _post(url: str, event: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(f"{url}/receive", json=event, timeout=30)
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_example_event_end_to_end(
    service: tuple[str, Settings, Path], example_event: dict[str, Any]
) -> None:
    url, settings, log = service
    task_id = _post(url, example_event)["taskID"]
    assert wait_final(url, task_id) == "200 OK", log.read_text()[-3000:]
    assert "sandbox controls: isolation: " in log.read_text(), "the worker states them at start"
    record = requests.get(f"{url}/get/{task_id}", timeout=10).json()
    assert [run["outcome"] for run in record["models"]] == ["ok", "ok", "ok"]
    assert record["started"] and record["finished"] and record["updated"] != record["created"]
    result = Path(record["result"]["location"])
    assert result.is_relative_to(settings.output_dir)  # type: ignore[arg-type]
    for name, content in expected_outputs(EXAMPLE_DATA / "inputs").items():
        assert (result / "outputs" / name).read_bytes() == content, name
    for number in (1, 2, 3):
        ini = (result / f"config_{number}.ini").read_text()
        assert "in_dir = inputs" in ini and "out_dir = outputs" in ini
    manifest = json.loads((result / "manifest.json").read_text())
    assert manifest["event"]["id"] == example_event["eventID"]
    assert manifest["input_transaction"] == 1101
    assert len(manifest["runs"]) == 3 and manifest["status"] == "succeeded"
    assert "Starting loose_coupling_model_1" in (result / "stdout.log").read_text()
    assert not (settings.work_dir / task_id).exists()


def test_duplicate_runs_once_and_failures_are_recorded(
    service: tuple[str, Settings, Path], example_event: dict[str, Any]
) -> None:
    url, settings, log = service
    failing = edited_event(
        example_event, "failing", values={"proxymod.config_2.PROJECT.failure": "1"}
    )
    invalid = edited_event(
        example_event, "invalid", values={"proxymod.config_1.OUTPUTS.out_dir": "../../escape"}
    )
    first = _post(url, example_event)["taskID"]
    again = requests.post(f"{url}/receive", json=example_event, timeout=30)
    assert again.status_code == 200 and again.json()["taskID"] == first
    bad = _post(url, failing)["taskID"]
    rejected = _post(url, invalid)["taskID"]
    assert wait_final(url, first) == "200 OK", log.read_text()[-3000:]
    assert wait_final(url, bad) == "500 Internal Server Error"
    assert wait_final(url, rejected) == "422 Unprocessable Entity"
    failed = requests.get(f"{url}/get/{bad}", timeout=10).json()
    assert "You raised an error on purpose" in failed["error"]["message"]
    assert failed["result"]["location"], "the failed run's logs and manifest are delivered too"
    refused = requests.get(f"{url}/get/{rejected}", timeout=10).json()
    assert "out_dir" in refused["error"]["message"]
    report = Path(refused["result"]["location"]) / "report.md"
    assert "out_dir" in report.read_text(), "the rejected upload gets its report"
    task = store.get_task(first)
    assert task is not None and task.attempts == 1
    outputs = sorted(p.name for p in settings.output_dir.iterdir())  # type: ignore[union-attr]
    # the results, the failed run's tree and the rejected request's report
    assert len([p for p in outputs if not p.endswith(".json")]) == 3
    assert not (settings.output_dir.parent / "escape").exists()  # type: ignore[union-attr]
