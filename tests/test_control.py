"""Retry and cancel end to end: real HTTP, a real worker process, the database and broker under
test. A failed task is retried until it succeeds once its input is fixed; a waiting task is
cancelled before it runs; a running task's model process tree is killed, nothing of it is
uploaded, and neither runs again after a worker restart."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from httpserver import serving
from test_e2e import start_worker, stop_worker

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.queue import create_celery_app, recover
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app


@dataclasses.dataclass
class Service:
    url: str
    settings: Settings
    log: Path
    worker: Any = None

    def start_worker(self) -> None:
        self.worker = start_worker(self.settings, self.log)

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)
            self.worker = None


@pytest.fixture
def service(open_store: Settings, data_copy: Path, tmp_path: Path) -> Iterator[Service]:
    """The web app over real HTTP on a private copy of the data; the worker is the test's."""
    settings = dataclasses.replace(open_store, data_dir=data_copy)
    with serving(create_app(settings)) as url:
        running = Service(url, settings, tmp_path / "worker.log")
        try:
            yield running
        finally:
            running.stop_worker()


def _post(url: str, event: dict[str, Any]) -> str:
    answer = requests.post(f"{url}/receive", json=event, timeout=30)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["taskID"]
    return task_id


def _record(url: str, task_id: str) -> dict[str, Any]:
    answer = requests.get(f"{url}/get/{task_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    record: dict[str, Any] = answer.json()
    return record


def _wait_state(
    service: Service, task_id: str, states: set[str], timeout: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = _record(service.url, task_id)
        if record["state"] in states:
            return record
        time.sleep(0.2)
    tail = service.log.read_text()[-3000:] if service.log.exists() else ""
    raise AssertionError(f"task {task_id} is {record.get('state')!r}, not {states}: {tail}")


def test_a_failed_task_is_retried_until_it_succeeds_once_its_input_is_fixed(
    service: Service, example_event: dict[str, Any], data_copy: Path
) -> None:
    service.start_worker()
    good = (data_copy / "inputs" / "in_file_one.csv").read_bytes()
    (data_copy / "inputs" / "in_file_one.csv").write_bytes(good + b"2999,1\n")
    task_id = _post(service.url, example_event)

    failed = _wait_state(service, task_id, {"failed"})
    assert failed["stage"] == "download" and "sha1" in failed["reason"]
    listed = requests.get(f"{service.url}/?state=failed", timeout=10).json()["tasks"]
    assert [t["taskID"] for t in listed] == [task_id] and listed[0]["stage"] == "download"
    again = requests.post(f"{service.url}/retry/{task_id}", timeout=10)
    assert again.status_code == 202 and again.json() == {"taskID": task_id, "attempt": 2}
    failed = (
        _wait_state(service, task_id, {"failed"})
        if _record(service.url, task_id)["attempt"] < 2
        else failed
    )
    failed_again = _wait_state(service, task_id, {"failed"})
    assert failed_again["attempt"] == 2, "the retry ran, and failed again on the same input"

    (data_copy / "inputs" / "in_file_one.csv").write_bytes(good)
    third = requests.post(f"{service.url}/retry/{task_id}", timeout=10)
    assert third.status_code == 202 and third.json()["attempt"] == 3
    done = _wait_state(service, task_id, {"succeeded"})
    assert done["reason"] is None and done["stage"] is None and done["attempt"] == 3
    assert [(h["number"], h["state"]) for h in done["history"]] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert "sha1" in done["history"][0]["reason"] and done["history"][2]["reason"] is None
    assert all(h["worker"] and h["started"] and h["finished"] for h in done["history"])

    refused = requests.post(f"{service.url}/retry/{task_id}", timeout=10)
    assert refused.status_code == 409, refused.text
    assert refused.json()["state"] == "succeeded" and "succeeded" in refused.json()["message"]
    missing = requests.post(f"{service.url}/retry/{uuid.uuid4()}", timeout=10)
    assert missing.status_code == 404
    assert requests.post(f"{service.url}/retry/nope", timeout=10).status_code == 422
    assert requests.get(f"{service.url}/retry/{task_id}", timeout=10).status_code == 405


def _bare_post(url: str, path: str) -> tuple[int, dict[str, Any]]:
    """POST without a body or Content-Length, as ``curl -X POST`` sends it."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("POST", path)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_a_waiting_task_cancelled_never_runs(
    service: Service, example_event: dict[str, Any]
) -> None:
    task_id = _post(service.url, example_event)  # no worker yet: it waits
    status, body = _bare_post(service.url, f"/cancel/{task_id}")
    assert status == 202, body
    assert body["state"] == "cancelled"
    record = _record(service.url, task_id)
    assert record["status"] == "499 Cancelled" and record["state"] == "cancelled"
    assert record["reason"].startswith("cancelled by an operator over HTTP from 127.0.0.1 at ")
    assert requests.post(f"{service.url}/cancel/{task_id}", timeout=10).status_code == 409

    service.start_worker()
    assert recover(create_celery_app(service.settings), service.settings) == 0
    other = _post(service.url, dict(example_event, eventID="after-the-cancel"))
    _wait_state(service, other, {"succeeded"})  # the worker ran what came after it
    record = _record(service.url, task_id)
    assert record["state"] == "cancelled" and record["attempt"] == 0 and record["history"] == []


MODEL = """
import subprocess
import sys
import time


def {name}(*configs):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{marker}"])
    print("started {marker}", flush=True)
    time.sleep(600)
"""


def _sleeper_event(example: dict[str, Any], data_dir: Path) -> tuple[dict[str, Any], str]:
    """The example event with one model that starts a child and sleeps; its marker."""
    marker = f"marker-{uuid.uuid4().hex}"
    name = "sleeper"
    source = MODEL.format(name=name, marker=marker).encode()
    (data_dir / "models" / f"{name}.py").write_bytes(source)
    event = json.loads(json.dumps(example))
    event["eventID"] = f"sleeper-{marker}"
    event["data"] = [
        entry
        for entry in event["data"]
        if not (entry.get("destinationTable") == "Files" and entry["subdir"] == "models")
    ]
    event["data"].append(
        {
            "destinationTable": "Files",
            "_id": 2001,
            "name": f"{name}.py",
            "subdir": "models",
            "mimetype": "text/x-python",
            "hashtype": "sha1",
            "hashsum": hashlib.sha1(source).hexdigest(),  # noqa: S324 - Pacifica's checksum
            "size": len(source),
        }
    )
    return event, marker


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_running_task_cancelled_is_killed_uploads_nothing_and_never_runs_again(
    service: Service, example_event: dict[str, Any], data_copy: Path
) -> None:
    event, marker = _sleeper_event(example_event, data_copy)
    service.start_worker()
    task_id = _post(service.url, event)
    _wait_state(service, task_id, {"running"})
    deadline = time.monotonic() + 120
    while not _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)  # the child the model started
    assert _processes_with(marker), service.log.read_text()[-3000:]

    asked = time.monotonic()
    answer = requests.post(f"{service.url}/cancel/{task_id}", timeout=10)
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "running"
    while _processes_with(marker) and time.monotonic() - asked < 30:
        time.sleep(0.1)
    gone_after = time.monotonic() - asked
    assert not _processes_with(marker), "the model's process tree is gone"
    assert gone_after < 10, f"killed {gone_after:.1f} s after the cancel"

    record = _wait_state(service, task_id, {"cancelled"}, timeout=60)
    assert record["status"] == "499 Cancelled" and record["result"]["location"] is None
    assert record["reason"].startswith("cancelled by an operator over HTTP from 127.0.0.1 at ")
    assert [(h["number"], h["state"]) for h in record["history"]] == [(1, "cancelled")]
    assert not list(service.settings.output_dir.glob("*")), "nothing was uploaded"  # type: ignore[union-attr]

    service.stop_worker()
    service.start_worker()  # a restart: recovery runs at once, redelivery would come now
    other = _post(service.url, dict(example_event, eventID="after-the-restart"))
    _wait_state(service, other, {"succeeded"})
    assert recover(create_celery_app(service.settings), service.settings) == 0
    record = _record(service.url, task_id)
    assert record["state"] == "cancelled" and record["attempt"] == 1
    assert not _processes_with(marker)
    task = store.get_task(task_id)
    assert task is not None and task.cancel_request is None

    retried = requests.post(f"{service.url}/retry/{task_id}", timeout=10)
    assert retried.status_code == 202 and retried.json()["attempt"] == 2
    _wait_state(service, task_id, {"running"})
    requests.post(f"{service.url}/cancel/{task_id}", timeout=10)
    record = _wait_state(service, task_id, {"cancelled"}, timeout=60)
    assert [h["state"] for h in record["history"]] == ["cancelled", "cancelled"]
