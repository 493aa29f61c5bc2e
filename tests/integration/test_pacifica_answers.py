"""Every upload that asks for proxymod gets a linked answer in the real Pacifica.

Uploads go through Ingest; Notifications delivers them through our broad subscription; the
answers (results with a run crate, a ``failed`` report, a ``rejected`` report) are found in
Metadata by their ``Transactions._id`` link and read back through Cartd.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from rocrate.rocrate import ROCrate

from .conftest import (
    Service,
    download_transaction,
    example_files,
    linked_transactions,
    transaction_info,
    upload_dataset,
)

pytestmark = pytest.mark.integration

RAISING_MODEL = '''"""A model whose own code raises, two frames below its entry point."""


def read_value(row):
    return row["value"]


def tight_coupling(config_1, config_2, config_3):
    print("reading the first row")
    read_value({"year": 2010})
'''


def _answer(service: Service, transaction: int, record: dict[str, Any]) -> dict[str, Any]:
    """The one transaction linked to ``transaction``, as Metadata describes it."""
    answer = record["result"]["transaction"]
    assert isinstance(answer, int), record
    assert linked_transactions(service.stack, transaction) == [answer]
    info = transaction_info(service.stack, answer)
    assert info["key_values"]["Transactions._id"] == str(transaction)
    assert info["key_values"]["proxymod.dispatcher_task"] == record["taskID"]
    assert (info["submitter"], info["project"], info["instrument"]) == (
        service.stack["submitter"],
        service.stack["project"],
        service.stack["instrument"],
    )
    info["id"] = answer
    return info


def _stored(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``subdir/name`` -> Metadata's file entry."""
    return {
        f"{entry['subdir'].strip('/')}/{entry['name']}".lstrip("/"): entry
        for entry in info["files"].values()
    }


def test_results_carry_a_run_crate_that_rocrate_reads(service: Service, tmp_path: Path) -> None:
    uploaded = upload_dataset(service.stack, service.key_values(), example_files(), tmp_path)
    record = service.wait_final(service.task_for(uploaded.transaction)["taskID"])
    assert record["status"] == "200 OK", record["error"]
    info = _answer(service, uploaded.transaction, record)
    assert info["key_values"]["proxymod.result"] == "succeeded"
    stored = _stored(info)
    got = download_transaction(service.stack, info["id"], {"ro-crate-metadata.json"})
    tree = tmp_path / "crate"
    tree.mkdir()
    (tree / "ro-crate-metadata.json").write_bytes(got["ro-crate-metadata.json"])
    crate = ROCrate(tree)
    assert crate.root_dataset["conformsTo"].id == "https://w3id.org/ro/wfrun/process/0.5"
    local = [e for e in crate.data_entities if ":" not in e.id]
    # every file the crate names is in the uploaded transaction, with the stated checksum
    assert {e.id for e in local} == set(stored) - {"ro-crate-metadata.json"}
    for entity in local:
        assert stored[entity.id]["hashsum"] == entity["sha1"], entity.id
        assert int(stored[entity.id]["size"]) == int(entity["contentSize"]), entity.id
    actions = [crate.dereference(ref.id) for ref in crate.root_dataset["mentions"]]
    assert [a["actionStatus"] for a in actions] == ["http://schema.org/CompletedActionStatus"] * 3
    # the model files are those of the input transaction, by their Pacifica ids and checksums
    inputs = _stored(transaction_info(service.stack, uploaded.transaction))
    for action in actions:
        model = action["instrument"]
        (source,) = [e for path, e in inputs.items() if path.endswith(model["name"])]
        assert model.id.endswith(f"/files?_id={source['_id']}")
        assert model["sha1"] == source["hashsum"]
        assert action["agent"]["name"] == f"Pacifica user {service.stack['submitter']}"


def test_a_model_that_raises_gets_a_failed_report_with_its_file_line_and_logs(
    service: Service, tmp_path: Path
) -> None:
    model = tmp_path / "tight_coupling.py"
    model.write_text(RAISING_MODEL)
    files = {**example_files(), "models/tight_coupling.py": model}
    uploaded = upload_dataset(service.stack, service.key_values(), files, tmp_path)
    record = service.wait_final(service.task_for(uploaded.transaction)["taskID"])
    assert record["status"] == "500 Internal Server Error"
    info = _answer(service, uploaded.transaction, record)
    assert info["key_values"]["proxymod.result"] == "failed"
    stored = _stored(info)
    assert {"report.md", "manifest.json", "ro-crate-metadata.json"} <= set(stored)
    assert "logs/tight_coupling.stderr.log" in stored
    assert "logs/loose_coupling.stdout.log" in stored  # the models that ran are there too
    got = download_transaction(
        service.stack, info["id"], {"report.md", "logs/tight_coupling.stderr.log"}
    )
    report = got["report.md"].decode()
    assert report.startswith("# proxymod: the run of your upload failed")
    assert "model `tight_coupling` (at `models/tight_coupling.py`, line 5, in `read_value`)" in (
        report
    )
    assert "KeyError: 'value'" in report and "reading the first row" in report
    assert "KeyError: 'value'" in got["logs/tight_coupling.stderr.log"].decode()
    assert hashlib.sha1(got["report.md"]).hexdigest() == stored["report.md"]["hashsum"]  # noqa: S324


def test_a_misspelt_key_gets_a_rejected_report_naming_it_and_its_correction(
    service: Service, tmp_path: Path
) -> None:
    values = service.key_values()
    values["proxymod.config_1.PROJECT.runtme"] = values.pop("proxymod.config_1.PROJECT.runtime")
    uploaded = upload_dataset(service.stack, values, example_files(), tmp_path)
    record = service.wait_final(service.task_for(uploaded.transaction)["taskID"])
    assert record["status"] == "422 Unprocessable Entity"
    assert "runtme" in record["error"]["message"]
    info = _answer(service, uploaded.transaction, record)
    assert info["key_values"]["proxymod.result"] == "rejected"
    assert set(_stored(info)) == {"report.md", "manifest.json", "ro-crate-metadata.json"}
    report = download_transaction(service.stack, info["id"], {"report.md"})["report.md"].decode()
    assert report.startswith("# proxymod: your upload was rejected")
    assert "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?" in report
    assert "(stage `validate`)" in report
