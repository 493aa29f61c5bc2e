"""The run crate (proxymod/crate.py): written into every result tree, read back with rocrate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from rocrate.rocrate import ROCrate

from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.proxymod import crate
from pacifica.dispatcher_proxymod.proxymod.handler import handle
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.transfer import make_transfer
from pacifica.dispatcher_proxymod.transfer.base import list_result_files

COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324 - Pacifica's checksum


def _event(document: dict[str, Any]) -> Any:
    return parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())


def _by_id(value: Any) -> str:
    """The identifier of an entity, a reference, or an id rocrate left as text."""
    if isinstance(value, str):
        return value
    return str(value.id if hasattr(value, "id") else value["@id"])


def _ids(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [_by_id(item) for item in values]


def check_crate(tree: Path, data_dir: Path) -> ROCrate:
    """Read the tree's crate with rocrate; every file it names exists with its checksum."""
    read = ROCrate(tree)
    root = read.root_dataset
    assert _ids(root["conformsTo"]) == [crate.PROFILE_ID]
    assert read.version == "1.1"
    local = [entity for entity in read.data_entities if ":" not in entity.id]
    remote = [entity for entity in read.data_entities if ":" in entity.id]
    listed = {entity.id for entity in local}
    on_disk = {
        item.relative_path.as_posix()
        for item in list_result_files(tree)
        if item.relative_path != PurePosixPath(crate.CRATE_NAME)
    }
    assert listed == on_disk  # every tree file, and nothing else
    for entity in local:
        path = tree / entity.id
        assert path.is_file(), entity.id
        assert entity["sha1"] == _sha1(path), entity.id
        assert int(entity["contentSize"]) == path.stat().st_size
    for entity in remote:  # a file of the input transaction: compare with the data dir
        source = data_dir / entity["name"]
        assert entity["sha1"] == _sha1(source), entity.id
        assert int(entity["contentSize"]) == source.stat().st_size
    return read


def actions_of(read: ROCrate) -> list[Any]:
    return [read.dereference(_by_id(ref)) for ref in read.root_dataset["mentions"]]


def test_a_successful_run_has_one_create_action_per_model(
    settings: Settings, example_event: dict[str, Any]
) -> None:
    result = handle(_event(example_event), "task-1", settings, make_transfer(settings))
    assert result.failure is None and result.delivery is not None
    tree = Path(result.delivery.location)
    read = check_crate(tree, settings.data_dir or Path())
    actions = actions_of(read)
    assert [action["name"] for action in actions] == [
        "Run of models/loose_coupling.py",
        "Run of models/tight_coupling.py",
        "Run of models/tight_coupling_twoway.py",
    ]
    for action, run in zip(actions, result.models, strict=True):
        assert action.type == "CreateAction"
        assert _by_id(action["actionStatus"]) == COMPLETED
        assert "error" not in action
        assert action["startTime"] == run.started.isoformat()
        assert action["endTime"] == run.ended.isoformat()
        instrument = action["instrument"]
        assert instrument.type == ["File", "SoftwareSourceCode"]
        assert instrument["name"] == f"models/{run.model}.py"
        objects = _ids(action["object"])
        assert objects[:3] == ["config_1.ini", "config_2.ini", "config_3.ini"]
        names = {read.dereference(i)["name"] for i in objects[3:]}
        assert names == {"inputs/in_file_one.csv", "inputs/in_file_two.csv"}
        results = _ids(action["result"])
        assert all(path in {e.id for e in read.data_entities} for path in results)
        assert any(path.startswith(f"outputs/{run.model}_model_1_outputs/") for path in results)
        agent = action["agent"]
        assert agent.type == "Person" and agent["name"] == "Pacifica user 10"
    # the model and input files are named by their Pacifica URIs in the input transaction
    loose = actions[0]["instrument"]
    assert loose.id == "http://metadata.pacifica.org/files?_id=1104"
    assert _by_id(loose["isPartOf"]) == example_event["source"]
    assert _by_id(read.root_dataset["isBasedOn"]) == example_event["source"]
    # each run's results are what it wrote: no other model's outputs
    second = _ids(actions[1]["result"])
    assert not any("loose_coupling_model" in path for path in second)


def test_a_failed_model_is_a_failed_action_with_its_error(
    settings: Settings, example_event: dict[str, Any], data_copy: Path
) -> None:
    (data_copy / "models" / "tight_coupling.py").write_text(
        "def tight_coupling(*configs):\n    raise KeyError('value')\n"
    )
    document = json.loads(json.dumps(example_event))
    for entry in document["data"]:
        if entry.get("name") == "tight_coupling.py":
            entry["hashsum"] = _sha1(data_copy / "models" / "tight_coupling.py")
            entry["size"] = (data_copy / "models" / "tight_coupling.py").stat().st_size
    local = settings.with_changes(data_dir=data_copy)
    result = handle(_event(document), "task-2", local, make_transfer(local))
    assert result.failure is not None and result.delivery is not None
    read = check_crate(Path(result.delivery.location), data_copy)
    statuses = [(_by_id(a["actionStatus"]), a.get("error")) for a in actions_of(read)]
    assert statuses[0] == (COMPLETED, None)
    assert statuses[1][0] == FAILED
    assert "KeyError" in statuses[1][1]
    assert actions_of(read)[1]["exitCode"] == 101
    assert statuses[2] == (COMPLETED, None)
    assert "failed" in read.root_dataset["name"]


def test_a_model_cannot_forge_the_crate(
    settings: Settings, example_event: dict[str, Any], data_copy: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("keep me")
    forger = data_copy / "models" / "tight_coupling.py"
    forger.write_text(
        "import os\n\n"
        "def tight_coupling(config_1, *rest):\n"
        "    result = os.path.dirname(os.path.dirname(os.path.abspath(config_1))) + '/result'\n"
        "    with open(result + '/ro-crate-metadata.json', 'w') as out:\n"
        "        out.write('{\"forged\": true}')\n"
    )
    document = json.loads(json.dumps(example_event))
    for entry in document["data"]:
        if entry.get("name") == "tight_coupling.py":
            entry["hashsum"] = _sha1(forger)
            entry["size"] = forger.stat().st_size
    local = settings.with_changes(data_dir=data_copy)
    result = handle(_event(document), "task-3", local, make_transfer(local))
    assert result.delivery is not None
    tree = Path(result.delivery.location)
    text = (tree / crate.CRATE_NAME).read_text()
    assert "forged" not in text
    check_crate(tree, data_copy)
    assert outside.read_text() == "keep me"


def test_a_planted_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    tree = tmp_path / "result"
    tree.mkdir()
    (tree / "report.md").write_text("# a report\n")
    outside = tmp_path / "outside.json"
    outside.write_text("keep me")
    (tree / crate.CRATE_NAME).symlink_to(outside)
    description = crate.RunDescription(
        task_id="t",
        event_source="/pacifica/metadata/ingest",
        transaction_id=7,
        submitter="alice",
        status="rejected",
        failure="proxymod.config_1.PROJECT.runtme: unknown key",
        dispatcher_version="1",
    )
    crate.write_crate(tree, description)
    assert outside.read_text() == "keep me"
    read = ROCrate(tree)
    assert [entity.id for entity in read.data_entities] == ["report.md"]
    assert "mentions" not in read.root_dataset  # no model ran
    assert _by_id(read.root_dataset["isBasedOn"]) == "urn:pacifica:transactions:7"
    assert "runtme" in read.root_dataset["description"]


@pytest.mark.parametrize(
    ("source", "file_id", "expected"),
    [
        (
            "http://metadata.pacifica.org/transactions?_id=1101",
            12,
            "http://metadata.pacifica.org/files?_id=12",
        ),
        (
            "http://metadata.pacifica.org/transactions?_id=1101",
            None,
            "http://metadata.pacifica.org/transactions?_id=1101#inputs/a%20b.csv",
        ),
        ("/pacifica/metadata/ingest", 12, "urn:pacifica:transactions:1101#inputs/a%20b.csv"),
    ],
)
def test_file_identifiers(source: str, file_id: int | None, expected: str) -> None:
    entry = crate.SourceFile("inputs/a b.csv", file_id, "0" * 40, 1, "text/csv")
    assert crate.source_file_uri(source, 1101, entry) == expected
