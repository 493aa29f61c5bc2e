"""A worker's steps on one task: claim, route, handle, record; retries of transient failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import edited_event

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.errors import TransferError, UploadFailed
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.execution import execute
from pacifica.dispatcher_proxymod.settings import PacificaSettings, Settings
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.transfer import make_transfer
from pacifica.dispatcher_proxymod.transfer.local import LocalTransfer


def _record(event: dict[str, Any], status: TaskStatus = TaskStatus.ACCEPTED) -> str:
    parsed = parse_http({"Content-Type": "application/json"}, json.dumps(event).encode())
    return store.record_event(parsed, status, route="proxymod").task.id


def _with(event: dict[str, Any], event_id: str, **changes: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(event))
    copy["eventID"] = event_id
    for entry in copy["data"]:
        if entry.get("key") in changes:
            entry["value"] = changes[entry["key"]]
    return copy


def test_success_is_recorded_with_models_and_result(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task_id = _record(example_event)
    result = execute(open_store, task_id, make_transfer(open_store))
    assert result.state == "done" and result.status is TaskStatus.OK
    task = store.get_task(task_id)
    assert task is not None and task.status == "200 OK" and task.finished is not None
    record = store.record(task)
    assert [m["model"] for m in record["models"]] == [
        "loose_coupling",
        "tight_coupling",
        "tight_coupling_twoway",
    ]
    assert Path(record["result"]["location"]).is_dir()
    again = execute(open_store, task_id, make_transfer(open_store))
    assert again.state == "done" and again.status is None  # dropped, not run twice


def test_missing_and_busy_tasks(open_store: Settings, example_event: dict[str, Any]) -> None:
    assert (
        execute(open_store, "00000000-0000-0000-0000-000000000000", make_transfer(open_store)).state
        == "missing"
    )
    task_id = _record(example_event)
    assert store.claim(task_id, "another-worker", 60) is store.Claim.CLAIMED
    busy = execute(open_store, task_id, make_transfer(open_store))
    assert busy.state == "busy" and busy.countdown == open_store.stale_after_seconds


def test_invalid_configuration_is_422_with_every_problem(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    event = _with(
        example_event,
        "bad",
        **{
            "proxymod.config_1.PROJECT.runtime": "-1",
            "proxymod.config_2.PROJECT.failure": "maybe",
            "proxymod.config_3.OUTPUTS.out_dir": "/abs",
        },
    )
    task_id = _record(event)
    assert execute(open_store, task_id, make_transfer(open_store)).status is (
        TaskStatus.UNPROCESSABLE
    )
    task = store.get_task(task_id)
    assert task is not None
    message = task.error_message or ""
    assert "runtime" in message and "failure" in message and "out_dir" in message
    assert not open_store.work_dir.joinpath(task_id).exists()


def test_model_failure_is_500_naming_the_model(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    task_id = _record(_with(example_event, "fails", **{"proxymod.config_3.PROJECT.failure": "1"}))
    result = execute(open_store, task_id, make_transfer(open_store))
    assert result.status is TaskStatus.FAILED
    task = store.get_task(task_id)
    assert task is not None and task.error_type == "ModelFailed"
    assert "You raised an error on purpose" in (task.error_message or "")
    assert task.result_location is not None  # logs and manifest still delivered
    assert open_store.work_dir.joinpath(task_id).is_dir()  # kept on failure by default


def test_missing_input_file_fails_naming_it(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-data"
    empty.mkdir()
    settings = open_store.with_changes(data_dir=empty)
    task_id = _record(example_event)
    result = execute(settings, task_id, make_transfer(settings))
    assert result.status is TaskStatus.FAILED
    task = store.get_task(task_id)
    assert task is not None and "in_file_one.csv" in (task.error_message or "")
    assert task.error_traceback and "Traceback" in task.error_traceback


def test_transient_failures_are_retried_then_given_up(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    closed = PacificaSettings(
        download_url="http://127.0.0.1:9/",
        upload_url="http://127.0.0.1:9/upload",
        upload_status_url="http://127.0.0.1:9/get_state",
        request_timeout_seconds=2,
    )
    settings = open_store.with_changes(
        transfer="pacifica", pacifica=closed, transfer_retries=2, retry_backoff_seconds=0
    )
    task_id = _record(example_event)
    transfer = make_transfer(settings)
    states = []
    for _ in range(3):
        result = execute(settings, task_id, transfer)
        states.append(result.state)
        if result.state == "retry":
            task = store.get_task(task_id)
            assert task is not None and task.status == "202 Accepted"
            assert "retrying" in (task.error_message or "")
    assert states == ["retry", "retry", "done"]
    task = store.get_task(task_id)
    assert task is not None and task.status == "500 Internal Server Error"
    assert "gave up after 3 attempts" in (task.error_message or "")


@pytest.mark.parametrize("keep", ["never", "always"])
def test_work_dir_policy(open_store: Settings, example_event: dict[str, Any], keep: str) -> None:
    settings = open_store.with_changes(keep_work=keep)
    task_id = _record(example_event)
    execute(settings, task_id, make_transfer(settings))
    assert settings.work_dir.joinpath(task_id).exists() is (keep == "always")


# ----------------------------------------------------------------------------- answers


def _delivered(location: str) -> dict[str, Any]:
    """The local transfer's record of a delivery: its key/values and files."""
    record: dict[str, Any] = json.loads(Path(location + ".delivery.json").read_text())
    key_values = {
        entry["key"]: entry["value"]
        for entry in record["metadata"]
        if entry["destinationTable"] == "TransactionKeyValue"
    }
    fields = {
        entry["destinationTable"]: entry["value"]
        for entry in record["metadata"]
        if entry["destinationTable"].startswith("Transactions.")
    }
    return {"key_values": key_values, "fields": fields}


def test_a_rejected_upload_gets_a_linked_report(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    event = edited_event(
        example_event,
        "misspelt",
        renames={"proxymod.config_1.PROJECT.runtime": "proxymod.config_1.PROJECT.runtme"},
    )
    task_id = _record(event)
    assert execute(open_store, task_id, make_transfer(open_store)).status is (
        TaskStatus.UNPROCESSABLE
    )
    task = store.get_task(task_id)
    assert task is not None and task.result_location is not None
    assert "runtme" in (task.error_message or "")  # the reason is still the problem itself
    tree = Path(task.result_location)
    assert sorted(p.name for p in tree.iterdir()) == [
        "manifest.json", "report.md", "ro-crate-metadata.json",
    ]  # fmt: skip
    text = (tree / "report.md").read_text()
    assert "your upload was rejected" in text
    assert "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?" in text
    delivered = _delivered(task.result_location)
    assert delivered["key_values"] == {
        "Transactions._id": "1101",
        "proxymod.result": "rejected",
        "proxymod.dispatcher_task": task_id,
    }
    assert delivered["fields"] == {
        "Transactions.submitter": 10, "Transactions.project": "1234a",
        "Transactions.instrument": 54,
    }  # fmt: skip
    manifest = json.loads((tree / "manifest.json").read_text())
    assert manifest["status"] == "rejected" and manifest["stage"] == "validate"
    assert not open_store.work_dir.joinpath(task_id).exists()  # a rejection keeps no work


def test_a_model_failure_report_names_the_file_and_line_beside_its_logs(
    open_store: Settings, example_event: dict[str, Any], data_copy: Path
) -> None:
    model = data_copy / "models" / "tight_coupling.py"
    model.write_text(
        "def helper(row):\n    return row['value']\n\n\n"
        "def tight_coupling(*configs):\n    print('reading')\n    helper({})\n"
    )
    event = json.loads(json.dumps(example_event))
    for entry in event["data"]:
        if entry.get("name") == "tight_coupling.py":
            entry["hashsum"] = hashlib.sha1(model.read_bytes()).hexdigest()  # noqa: S324
            entry["size"] = model.stat().st_size
    settings = open_store.with_changes(data_dir=data_copy)
    task_id = _record(event)
    assert execute(settings, task_id, make_transfer(settings)).status is TaskStatus.FAILED
    task = store.get_task(task_id)
    assert task is not None and task.result_location is not None
    tree = Path(task.result_location)
    text = (tree / "report.md").read_text()
    assert "the run of your upload failed" in text
    assert "model `tight_coupling` (at `models/tight_coupling.py`, line 2, in `helper`)" in text
    assert "KeyError: 'value'" in text and "reading" in text
    assert (tree / "logs" / "tight_coupling.stderr.log").is_file()
    assert (tree / "ro-crate-metadata.json").is_file()
    assert _delivered(task.result_location)["key_values"]["proxymod.result"] == "failed"


def test_a_download_failure_gets_a_failed_report(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-data"
    empty.mkdir()
    settings = open_store.with_changes(data_dir=empty)
    task_id = _record(example_event)
    assert execute(settings, task_id, make_transfer(settings)).status is TaskStatus.FAILED
    task = store.get_task(task_id)
    assert task is not None and task.result_location is not None
    text = (Path(task.result_location) / "report.md").read_text()
    assert "in_file_one.csv" in text and "(stage `download`)" in text
    assert "Probably nothing in your upload" in text
    assert _delivered(task.result_location)["key_values"]["proxymod.result"] == "failed"


class _RefusingUploads(LocalTransfer):
    """The local transfer, but Ingest is down: every upload fails transiently."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.data_dir, settings.output_dir)
        self.uploads = 0

    def upload(self, upload: Any, result_dir: Path, key_values: Any) -> Any:
        self.uploads += 1
        raise TransferError("Ingest answered 503", transient=True)


def test_a_report_that_cannot_be_uploaded_keeps_the_original_reason(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    settings = open_store.with_changes(transfer_retries=2, retry_backoff_seconds=0)
    event = json.loads(json.dumps(example_event))
    event["data"] = [e for e in event["data"] if e.get("name") != "in_file_two.csv"]
    transfer = _RefusingUploads(settings)
    task_id = _record(event)
    assert execute(settings, task_id, transfer).status is TaskStatus.UNPROCESSABLE
    task = store.get_task(task_id)
    assert task is not None and task.result_location is None
    first, added = (task.error_message or "").split("\n")
    assert "in_file_two.csv" in first  # the reason is the original one
    assert added == "The report could not be uploaded either: Ingest answered 503"
    assert task.reason == first  # the reason people see is the original one
    assert transfer.uploads == 3  # retried like results: 1 + DISPATCHER_TRANSFER_RETRIES


def test_no_report_without_a_transaction_to_link_to(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    event = json.loads(json.dumps(example_event))
    event["data"] = [e for e in event["data"] if e["destinationTable"] != "Transactions._id"]
    task_id = _record(event)
    assert execute(open_store, task_id, make_transfer(open_store)).status is (
        TaskStatus.UNPROCESSABLE
    )
    task = store.get_task(task_id)
    assert task is not None and task.result_location is None
    output = open_store.output_dir
    assert output is not None
    assert not output.exists() or not list(output.rglob("report.md"))


class _RefusingTheResults(LocalTransfer):
    """The local transfer, but the first upload (the results) fails for good."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.data_dir, settings.output_dir)
        self.uploads = 0

    def upload(self, upload: Any, result_dir: Path, key_values: Any) -> Any:
        self.uploads += 1
        if self.uploads == 1:
            raise UploadFailed("Ingest refused the bundle: 400 Bad Request")
        return super().upload(upload, result_dir, key_values)


def test_results_that_cannot_be_uploaded_are_answered_with_the_runs_and_partial_outputs(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    transfer = _RefusingTheResults(open_store)
    task_id = _record(example_event)
    assert execute(open_store, task_id, transfer).status is TaskStatus.FAILED
    task = store.get_task(task_id)
    assert task is not None and task.result_location is not None
    assert task.reason == "Ingest refused the bundle: 400 Bad Request"
    tree = Path(task.result_location)
    text = (tree / "report.md").read_text()
    assert "(stage `upload`)" in text
    assert "| `loose_coupling` | ok | 0 |" in text  # the runs, from the handler's manifest
    assert "The end of `logs/loose_coupling.stdout.log`:" in text
    assert (tree / "outputs" / "loose_coupling_model_1_outputs").is_dir()  # partial outputs
    manifest = json.loads((tree / "manifest.json").read_text())
    assert [run["model"] for run in manifest["runs"]] == [
        "loose_coupling", "tight_coupling", "tight_coupling_twoway",
    ]  # fmt: skip
    assert _delivered(task.result_location)["key_values"]["proxymod.result"] == "failed"
