"""The proxymod handler's steps on real files: selection, INIs, manifest, guards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pacifica.dispatcher_proxymod.errors import UnprocessableEvent
from pacifica.dispatcher_proxymod.events import parse_http, parse_upload
from pacifica.dispatcher_proxymod.proxymod.config import parse_configs
from pacifica.dispatcher_proxymod.proxymod.handler import (
    _guard_result_dir,
    handle,
    select_files,
)
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.transfer import make_transfer


def _event(document: dict[str, Any]) -> Any:
    return parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())


def _files(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in document["data"] if e["destinationTable"] == "Files"]


def _select(document: dict[str, Any]) -> Any:
    upload = parse_upload(document["data"])
    return select_files(upload, parse_configs(upload.key_values, 100), 100)


def test_selection_takes_the_configured_inputs_and_the_models(
    example_event: dict[str, Any],
) -> None:
    chosen = _select(example_event)
    assert sorted(e.name for e in chosen.inputs) == ["in_file_one.csv", "in_file_two.csv"]
    assert [e.name for e in chosen.models] == [
        "loose_coupling.py",
        "tight_coupling.py",
        "tight_coupling_twoway.py",
    ]


def test_every_selection_problem_is_reported(example_event: dict[str, Any]) -> None:
    document = json.loads(json.dumps(example_event))
    document["data"] = [
        e
        for e in document["data"]
        if e.get("name") != "in_file_two.csv" and e["destinationTable"] != "Transactions._id"
    ]
    for entry in _files(document):
        if entry["name"] == "tight_coupling.py":
            entry["name"] = "tight-coupling.py"
    with pytest.raises(UnprocessableEvent) as caught:
        _select(document)
    text = str(caught.value)
    assert "in_file_two.csv" in text
    assert "Transactions._id" in text
    assert "tight-coupling.py" in text
    # the transaction, in_file_two once (it names the three configs), the model name
    assert len(caught.value.problems) == 3
    assert "did you mean `tight_coupling.py`?" in caught.value.problems[2]


def test_hostile_file_entries_are_rejected(example_event: dict[str, Any]) -> None:
    for name, subdir in (("../../x.py", "models"), ("x.py", "/etc"), ("x.py", "models/../..")):
        document = json.loads(json.dumps(example_event))
        _files(document)[0].update(name=name, subdir=subdir)
        with pytest.raises(UnprocessableEvent):
            _select(document)


def test_no_models_is_refused(example_event: dict[str, Any]) -> None:
    document = json.loads(json.dumps(example_event))
    document["data"] = [e for e in document["data"] if e.get("mimetype") != "text/x-python"]
    with pytest.raises(UnprocessableEvent, match="text/x-python"):
        _select(document)


@pytest.mark.parametrize("hashtype", ["shake128", "shake_128", "crc32"])
def test_unusable_hash_types_are_rejected_naming_the_file_and_the_supported_types(
    settings: Settings, example_event: dict[str, Any], hashtype: str
) -> None:
    document = json.loads(json.dumps(example_event))
    model = next(e for e in _files(document) if e["name"] == "tight_coupling.py")
    model["hashtype"] = hashtype
    with pytest.raises(UnprocessableEvent) as caught:
        handle(_event(document), "task-hash", settings, make_transfer(settings))
    text = str(caught.value)
    assert f"`models/tight_coupling.py`: unsupported hash type {hashtype!r}" in text
    assert "supported: " in text and "sha1" in text and "md5" in text
    assert not (settings.work_dir / "task-hash").exists(), "refused before anything ran"


def test_the_manifest_labels_each_checksum_with_its_real_type(
    settings: Settings, example_event: dict[str, Any], data_copy: Path
) -> None:
    document = json.loads(json.dumps(example_event))
    model = next(e for e in _files(document) if e["name"] == "loose_coupling.py")
    content = (data_copy / "models" / "loose_coupling.py").read_bytes()
    model.update(hashtype="md5", hashsum=hashlib.md5(content).hexdigest())  # noqa: S324
    local = settings.with_changes(data_dir=data_copy)
    result = handle(_event(document), "task-md5", local, make_transfer(local))
    assert result.delivery is not None
    manifest = json.loads((Path(result.delivery.location) / "manifest.json").read_text())
    described = {m["path"]: m for m in manifest["models"]}
    assert described["models/loose_coupling.py"]["hashtype"] == "md5"
    assert described["models/loose_coupling.py"]["hashsum"] == model["hashsum"]
    assert described["models/tight_coupling.py"]["hashtype"] == "sha1"
    assert "sha1" not in described["models/loose_coupling.py"]


def test_handle_writes_configs_as_given_and_gives_models_absolute_ones(
    settings: Settings, example_event: dict[str, Any]
) -> None:
    keep = settings.with_changes(keep_work="always")
    result = handle(_event(example_event), "task-1", keep, make_transfer(keep))
    assert result.failure is None and result.delivery is not None
    delivered = Path(result.delivery.location)
    assert (delivered / "config_1.ini").read_text() == (
        "[PROJECT]\nruntime = 0\nfailure = 0\n[INPUTS]\nin_dir = inputs\n"
        "in_file_one = in_file_one.csv\nin_file_two = in_file_two.csv\n"
        "[OUTPUTS]\nout_dir = outputs\n"
    )
    work = keep.work_dir / "task-1" / "sandbox"
    absolute = (work / "run" / "config_1.ini").read_text()
    assert f"in_dir = {work / 'files' / 'inputs'}" in absolute
    assert f"out_dir = {work / 'result' / 'outputs'}" in absolute
    manifest = json.loads((delivered / "manifest.json").read_text())
    assert manifest["event"]["source"] == example_event["source"]
    assert manifest["configs"][0]["values"]["PROJECT"] == {"runtime": "0", "failure": "0"}
    assert manifest["limits"]["memory_mb"] == keep.limits.memory_mb
    assert manifest["isolation"] in ("bwrap", "process")
    outputs = {o["path"] for o in manifest["outputs"]}
    assert (
        "outputs/loose_coupling_model_1_outputs/output1_loose_coupling_model_1_2010_2100.csv"
        in (outputs)
    )


def test_guard_refuses_a_replaced_result_dir(tmp_path: Path) -> None:
    swapped = tmp_path / "swapped"
    swapped.symlink_to(tmp_path)
    with pytest.raises(UnprocessableEvent):
        _guard_result_dir(swapped)
    _guard_result_dir(tmp_path)


def test_service_files_are_written_after_the_models_and_win(
    settings: Settings, example_event: dict[str, Any], data_copy: Path
) -> None:
    forger = data_copy / "models" / "loose_coupling.py"
    forger.write_text(
        forger.read_text()
        + "\n\n_real = loose_coupling\n\n\ndef loose_coupling(*configs):\n"
        + "    for name in ('config_1.ini', 'stdout.log', 'manifest.json', 'report.md'):\n"
        + "        open('result/' + name, 'w').write('forged')\n"
        + "    _real(*configs)\n"
    )
    document = json.loads(json.dumps(example_event))
    entry = next(e for e in _files(document) if e["name"] == "loose_coupling.py")
    entry["hashsum"] = hashlib.sha1(forger.read_bytes()).hexdigest()  # noqa: S324
    local = settings.with_changes(data_dir=data_copy)
    result = handle(_event(document), "task-forge", local, make_transfer(local))
    assert result.failure is None and result.delivery is not None
    delivered = Path(result.delivery.location)
    for name in ("config_1.ini", "stdout.log", "manifest.json"):
        assert "forged" not in (delivered / name).read_text(), name
    assert not (delivered / "report.md").exists()
    manifest = json.loads((delivered / "manifest.json").read_text())
    assert {entry["path"] for entry in manifest["refused"]} == {
        "config_1.ini", "stdout.log", "manifest.json", "report.md",
    }  # fmt: skip


def test_too_many_files_are_refused(example_event: dict[str, Any]) -> None:
    upload = parse_upload(example_event["data"])
    with pytest.raises(UnprocessableEvent, match="more than 4"):
        select_files(upload, parse_configs(upload.key_values, 100), 4)
