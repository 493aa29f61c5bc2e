"""Our service against the real Pacifica: Ingest -> Metadata -> Notifications -> us -> Cartd/Ingest.

Each test uploads with pacifica-uploader, lets Notifications deliver the event through the
subscription our ``subscribe`` command made (see conftest), and checks the outcome in our task
records and in Metadata, downloading results back through Cartd. Run with ``-s`` to see the
timings of each stage, printed when the module ends.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from expected import expected_outputs
from pacifica_stack_finder import STACK_ROOT

from pacifica.dispatcher_proxymod.subscribe import (
    NotificationsClient,
    subscribe,
    unsubscribe,
)

from .conftest import (
    EXAMPLES,
    RUN_KEY,
    Service,
    download_transaction,
    example_files,
    linked_transactions,
    transaction_info,
    upload_dataset,
)

pytestmark = pytest.mark.integration

OK = "200 OK"
FAILED = "500 Internal Server Error"
REJECTED = "422 Unprocessable Entity"


def _result_transaction(service: Service, input_transaction: int, record: dict[str, Any]) -> int:
    """The one linked result transaction, checked against Metadata and our record."""
    result = record["result"]["transaction"]
    assert isinstance(result, int), record["result"]
    assert linked_transactions(service.stack, input_transaction) == [result]
    return result


def _assert_enabled(service: Service) -> None:
    done = service.subscribe_command("--status")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": enabled" in done.stdout


def test_a_example_dataset_runs_and_results_come_back_through_cartd(
    service: Service, tmp_path: Path
) -> None:
    uploaded = upload_dataset(service.stack, service.key_values(), example_files(), tmp_path)
    task = service.task_for(uploaded.transaction)
    record = service.wait_final(task["taskID"])
    assert record["status"] == OK, record["error"]
    assert [run["outcome"] for run in record["models"]] == ["ok", "ok", "ok"]
    result = _result_transaction(service, uploaded.transaction, record)

    info = transaction_info(service.stack, result)
    assert info["key_values"]["Transactions._id"] == str(uploaded.transaction)
    assert info["key_values"]["proxymod.result"] == "succeeded"
    assert info["key_values"]["proxymod.dispatcher_task"] == task["taskID"]
    assert (info["submitter"], info["project"], info["instrument"]) == (
        service.stack["submitter"],
        service.stack["project"],
        service.stack["instrument"],
    )
    expected = {
        f"outputs/{name}": content
        for name, content in expected_outputs(EXAMPLES / "data" / "inputs").items()
    }
    stored = {
        f"{entry['subdir'].strip('/')}/{entry['name']}".lstrip("/")
        for entry in info["files"].values()
    }
    assert set(expected) <= stored
    assert {"manifest.json", "stdout.log", "config_1.ini", "config_3.ini"} <= stored

    downloaded = download_transaction(service.stack, result, {*expected, "manifest.json"})
    for name, content in expected.items():
        assert downloaded[name] == content, name
    manifest = json.loads(downloaded["manifest.json"])
    assert manifest["input_transaction"] == uploaded.transaction
    assert manifest["status"] == "succeeded"
    assert manifest["event"]["id"] == f"metadata.ingest.{uploaded.transaction}"
    _assert_enabled(service)
    service.runs["a"] = (uploaded, record)
    service.note_timings("a: example data set", uploaded, record)


class _Sink(BaseHTTPRequestHandler):
    """Answers 200 to every POST and keeps the bodies."""

    received: queue.Queue[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.put(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def sink(service: Service) -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A second subscriber that takes every upload of this run: proof that an event went out."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    handler = type("Sink", (_Sink,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = NotificationsClient(
        service.stack["notifications_url"],
        service.stack["network_id"],
        service.stack["notifications_user_header"],
    )
    name = f"dispatcher-test-sink-{uuid.uuid4().hex}"
    everything_of_this_run = (
        '$[?($["eventType"] = "org.pacifica.metadata.ingest" and $["data"][*][?('
        f'@["destinationTable"] = "TransactionKeyValue" and @["key"] = "{RUN_KEY}" '
        f'and @["value"] = "{service.marker}")])]'
    )
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    subscribe(client, name, url, everything_of_this_run, {})
    try:
        yield name, received
    finally:
        unsubscribe(client, name)
        server.shutdown()
        server.server_close()


def _wait_sink(received: queue.Queue[dict[str, Any]], transaction: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            event = received.get(timeout=0.5)
        except queue.Empty:
            continue
        if event.get("eventID") == f"metadata.ingest.{transaction}":
            return event
    raise AssertionError(f"the sink got no event for transaction {transaction} within 120 s")


def test_b_upload_without_proxymod_keys_is_not_delivered_to_us(
    service: Service, sink: tuple[str, queue.Queue[dict[str, Any]]], tmp_path: Path
) -> None:
    _, received = sink
    # the broad subscription takes any proxymod. key: this upload has none
    values = {RUN_KEY: service.marker, "campaign": "not-for-proxymod"}
    uploaded = upload_dataset(service.stack, values, example_files(), tmp_path)
    _wait_sink(received, uploaded.transaction)  # Notifications matched this event just now
    time.sleep(3)  # our delivery, had it matched, would have been queued with the sink's
    assert service.tasks_for(uploaded.transaction) == []
    ours = service.subscription()
    assert ours is not None
    since = datetime.fromtimestamp(uploaded.started - 120)
    _, deliveries = _logged_event(since, f"metadata.ingest.{uploaded.transaction}")
    assert deliveries, "Notifications logged no delivery at all (the sink's is missing)"
    assert not [line for line in deliveries if line.startswith(ours.uuid)], deliveries
    assert linked_transactions(service.stack, uploaded.transaction) == []
    _assert_enabled(service)


def test_c_failing_model_is_reported_and_its_logs_uploaded(
    service: Service, tmp_path: Path
) -> None:
    values = service.key_values(proxymod__config_2__PROJECT__failure="1")
    uploaded = upload_dataset(service.stack, values, example_files(), tmp_path)
    task = service.task_for(uploaded.transaction)
    record = service.wait_final(task["taskID"])
    assert record["status"] == FAILED
    assert "You raised an error on purpose" in record["error"]["message"]
    result = _result_transaction(service, uploaded.transaction, record)
    info = transaction_info(service.stack, result)
    assert info["key_values"]["proxymod.result"] == "failed"
    assert info["key_values"]["Transactions._id"] == str(uploaded.transaction)
    names = {entry["name"] for entry in info["files"].values()}
    assert {"manifest.json", "stdout.log", "stderr.log"} <= names
    downloaded = download_transaction(service.stack, result, {"manifest.json", "stderr.log"})
    manifest = json.loads(downloaded["manifest.json"])
    assert manifest["status"] == "failed"
    assert "You raised an error on purpose" in manifest["failure"]
    assert "You raised an error on purpose" in downloaded["stderr.log"].decode(errors="replace")
    _assert_enabled(service)
    service.note_timings("c: failing model", uploaded, record)


def test_f_misspelt_key_reaches_us_through_the_broad_subscription_and_is_rejected(
    service: Service, tmp_path: Path
) -> None:
    subscription = service.subscription()
    assert subscription is not None
    assert '@["key"][substring(0, 9)] = "proxymod."' in subscription.jsonpath  # the broad one
    values = service.key_values()
    values["proxymod.config_1.PROJECT.runtme"] = values.pop("proxymod.config_1.PROJECT.runtime")
    uploaded = upload_dataset(service.stack, values, example_files(), tmp_path)
    task = service.task_for(uploaded.transaction)  # delivered: the strict route would not be
    record = service.wait_final(task["taskID"])
    assert record["status"] == REJECTED, record
    message = record["error"]["message"]
    assert "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?" in message
    assert (
        "`proxymod.config_1.PROJECT.runtime`: missing (PROJECT needs runtime, failure); "
        "`proxymod.config_1.PROJECT.runtme` is given: is it misspelt?"
    ) in message
    assert record["models"] == []  # nothing ran
    print(f"\nf: task {task['taskID']} {record['status']}: {message}")
    _assert_enabled(service)
    service.note_timings("f: misspelt key, rejected", uploaded, record)


def test_g_pack_s_uploader_config_makes_pacifica_cli_upload_what_was_tested(
    service: Service, tmp_path: Path
) -> None:
    data = EXAMPLES / "data"
    uploader = tmp_path / "uploader.json"
    configs = [f"--config={EXAMPLES / 'configs' / f'config_{n}.ini'}" for n in (1, 2, 3)]
    command = [sys.executable, "-m", "pacifica.dispatcher_proxymod", "pack", str(data), *configs]
    options = [f"--output={tmp_path / 'event.json'}", f"--uploader-config={uploader}"]
    packed = subprocess.run([*command, *options], capture_output=True, text=True, check=False)
    assert packed.returncode == 0, packed.stderr
    metadata = json.loads(uploader.read_text())
    metadata.append(  # this run's tag, so that only our subscription takes it
        {
            "destinationTable": "TransactionKeyValue",
            "key": RUN_KEY,
            "metaID": "run",
            "value": service.marker,
            "query_results": [],
        }
    )
    uploader.write_text(json.dumps(metadata))
    env = dict(service.env, HOME=str(tmp_path / "home"), PAGER="cat")
    (tmp_path / "home").mkdir()
    cli = [str(Path(sys.executable).parent / "pacifica-cli"), "upload", f"--config={uploader}"]
    done = subprocess.run(
        [*cli, f"--logon={service.stack['network_id']}", "inputs", "models"],
        cwd=data,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    job = re.search(r"Waiting job to complete \((\d+)\)", done.stdout)
    assert job is not None, done.stdout
    transaction = int(job.group(1))
    task = service.task_for(transaction)
    record = service.wait_final(task["taskID"])
    assert record["status"] == OK, record["error"]
    assert [run["outcome"] for run in record["models"]] == ["ok", "ok", "ok"]
    asked = transaction_info(service.stack, transaction)["key_values"]
    event = json.loads((tmp_path / "event.json").read_text())
    tested = {
        e["key"]: e["value"] for e in event["data"] if e.get("key", "").startswith("proxymod.")
    }
    assert {k: v for k, v in asked.items() if k.startswith("proxymod.")} == tested
    print(f"\ng: pacifica-cli upload {transaction} -> task {task['taskID']} {record['status']}")


def _wait_for_a_retry(service: Service, task_id: str) -> dict[str, Any]:
    """The record once the worker has given the task back after a transient failure."""
    deadline = time.monotonic() + 120
    record = service.record(task_id)
    while time.monotonic() < deadline:
        record = service.record(task_id)
        if (record["error"] or {}).get("type") == "TransientError":
            return record
        assert record["status"].split()[0] not in ("200", "422", "500"), record
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} was not retried within 120 s: {record}")


def test_d1_cartd_unreachable_then_back_completes(service: Service, tmp_path: Path) -> None:
    service.cartd.off()
    try:
        uploaded = upload_dataset(service.stack, service.key_values(), example_files(), tmp_path)
        task = service.task_for(uploaded.transaction)
        retried = _wait_for_a_retry(service, task["taskID"])
        assert "Cartd is unreachable" in retried["error"]["message"]
        assert "retrying in" in retried["error"]["message"]
    finally:
        service.cartd.on()
    record = service.wait_final(task["taskID"])
    assert record["status"] == OK, record["error"]
    assert record["attempts"] >= 2
    result = _result_transaction(service, uploaded.transaction, record)
    assert transaction_info(service.stack, result)["key_values"]["proxymod.result"] == "succeeded"
    _assert_enabled(service)
    service.note_timings("d1: Cartd down, then back", uploaded, record)


def test_d2_ingest_unreachable_gives_up_with_the_reason(service: Service, tmp_path: Path) -> None:
    service.ingest.off()
    try:
        uploaded = upload_dataset(service.stack, service.key_values(), example_files(), tmp_path)
        task = service.task_for(uploaded.transaction)
        record = service.wait_final(task["taskID"])
    finally:
        service.ingest.on()
    assert record["status"] == FAILED
    message = record["error"]["message"]
    attempts = service.settings.transfer_retries + 1
    assert f"gave up after {attempts} attempts" in message and "Ingest is unreachable" in message
    assert record["attempts"] == attempts
    assert linked_transactions(service.stack, uploaded.transaction) == []
    _assert_enabled(service)
    service.note_timings("d2: Ingest down throughout", uploaded, record)


def _notifications_cmd(*args: str) -> str:
    """Run the stack's ``pacifica-notifications-cmd`` the way the harness runs its services."""
    env = {
        "PATH": f"{STACK_ROOT / 'venv' / 'bin'}:/usr/bin:/bin",
        "HOME": str(STACK_ROOT / "home"),
        "LANG": "C.UTF-8",
        "NOTIFICATIONS_CONFIG": str(STACK_ROOT / "conf" / "notifications.ini"),
    }
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    done = subprocess.run(
        [str(STACK_ROOT / "venv" / "bin" / "pacifica-notifications-cmd"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _logged_event(since: datetime, event_id: str) -> tuple[str, list[str]]:
    """Notifications' log entry of ``event_id``: its uuid and its delivery (ELM) lines."""
    output = _notifications_cmd(
        "eventget", "--limit", "100000", "--start-date", since.strftime("%Y-%m-%d %H:%M:%S")
    )
    blocks = output.split("Event - ")[1:]
    for block in blocks:
        first, _, rest = block.partition("\n")
        body, *matches = rest.split("\n    ELM ")
        if json.loads(body).get("eventID") == event_id:
            return first.strip(), [line.strip() for line in matches]
    raise AssertionError(f"Notifications logged no event {event_id} since {since}")


def test_e_the_same_event_twice_runs_once(service: Service) -> None:
    if "a" not in service.runs:
        pytest.skip("needs the transaction of test_a")
    uploaded, record = service.runs["a"]
    event_id = f"metadata.ingest.{uploaded.transaction}"
    subscription = service.subscription()
    assert subscription is not None

    # 1. Notifications' own re-delivery: eventretry of the logged event
    since = datetime.fromtimestamp(uploaded.started - 120)
    log_uuid, deliveries = _logged_event(since, event_id)
    ours = [line for line in deliveries if line.startswith(subscription.uuid)]
    assert len(ours) == 1 and ours[0].endswith("policy 200 target 202"), deliveries
    _notifications_cmd("eventretry", log_uuid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ours = [
            line for line in _logged_event(since, event_id)[1] if line.startswith(subscription.uuid)
        ]
        if len(ours) == 2 and _answers(ours) == ["target 200", "target 202"]:
            break
        time.sleep(0.5)
    # the first delivery made the task (202), the re-delivery found it (200)
    assert _answers(ours) == ["target 200", "target 202"], ours

    # 2. the same body posted again by hand, as any re-sender would
    assert record["event"]["id"] == event_id
    original = _original_event(service, uploaded.transaction)
    again = requests.post(f"{service.url}/receive", json=original, auth=service.auth, timeout=30)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["taskID"] == record["taskID"]

    assert [task["taskID"] for task in service.tasks_for(uploaded.transaction)] == [
        record["taskID"]
    ]
    assert service.record(record["taskID"])["attempts"] == record["attempts"]
    assert linked_transactions(service.stack, uploaded.transaction) == [
        record["result"]["transaction"]
    ]
    _assert_enabled(service)


def _answers(lines: list[str]) -> list[str]:
    """Our answers to Notifications' deliveries, from eventget's ELM lines (policy must be 200)."""
    assert all(" policy 200 " in line for line in lines), lines
    return sorted(line.rpartition(" policy 200 ")[2] for line in lines)


def _original_event(service: Service, transaction: int) -> dict[str, Any]:
    """The event exactly as Notifications logged it (the body it delivers)."""
    since = datetime.fromtimestamp(time.time() - 3600)
    output = _notifications_cmd(
        "eventget", "--limit", "100000", "--start-date", since.strftime("%Y-%m-%d %H:%M:%S")
    )
    for block in output.split("Event - ")[1:]:
        body = block.partition("\n")[2].split("\n    ELM ")[0]
        event: dict[str, Any] = json.loads(body)
        if event.get("eventID") == f"metadata.ingest.{transaction}":
            return event
    raise AssertionError(f"no logged event for transaction {transaction}")
