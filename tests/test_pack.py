"""Tests for prepare/pack.py: proxymod INI files and a data folder -> the event, and the upload."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pacifica.cli
import pytest
from conftest import DELIVERY_KEYS
from expected import expected_outputs
from pacifica.uploader.metadata import metadata_decode

from pacifica.dispatcher_proxymod.prepare.pack import PackError, pack, uploader_metadata
from pacifica.dispatcher_proxymod.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMMAND = [sys.executable, "-m", "pacifica.dispatcher_proxymod"]
SETTINGS = Settings()

INI = """# as a model reads it
[PROJECT]
runtime = 0   # seconds
failure = 0
[INPUTS]
in_dir = {in_dir}
in_file_one = in_file_one.csv
in_file_two = "in_file_two.csv"
[OUTPUTS]
out_dir = outputs
"""


def nested_dataset(root: Path) -> tuple[Path, list[Path]]:
    """The example models with the inputs in nested folders, one per config (same contents)."""
    data = root / "data"
    shutil.copytree(EXAMPLES / "data" / "models", data / "models")
    configs = []
    for number, folder in enumerate(["site_a/2020/run_1", "site_b", "site_a/2020/run_1"], 1):
        target = data / "inputs" / folder
        target.mkdir(parents=True, exist_ok=True)
        for name in ("in_file_one.csv", "in_file_two.csv"):
            shutil.copy(EXAMPLES / "data" / "inputs" / name, target / name)
        config = root / f"config_{number}.ini"
        config.write_text(INI.format(in_dir=f"inputs/{folder}"), encoding="utf-8")
        configs.append(config)
    return data, configs


def files_of(event: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (entry["subdir"], entry["name"], entry["mimetype"])
        for entry in event["data"]
        if entry["destinationTable"] == "Files"
    ]


def key_values_of(event: dict[str, Any]) -> dict[str, str]:
    return {
        entry["key"]: entry["value"]
        for entry in event["data"]
        if entry["destinationTable"] == "TransactionKeyValue"
    }


def run_pack(data: Path, configs: list[Path], *options: str) -> subprocess.CompletedProcess[str]:
    """The ``pack`` command on ``data`` with ``configs`` in order."""
    return subprocess.run(
        [*COMMAND, "pack", str(data), *(f"--config={c}" for c in configs), *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pack_then_process_gives_the_example_outputs(tmp_path: Path) -> None:
    data, configs = nested_dataset(tmp_path)
    event_path = tmp_path / "event.json"
    packed = run_pack(data, configs, f"--output={event_path}")
    assert packed.returncode == 0, packed.stderr
    event = json.loads(event_path.read_text(encoding="utf-8"))
    assert files_of(event) == [
        ("inputs/site_a/2020/run_1", "in_file_one.csv", "text/csv"),
        ("inputs/site_a/2020/run_1", "in_file_two.csv", "text/csv"),
        ("inputs/site_b", "in_file_one.csv", "text/csv"),
        ("inputs/site_b", "in_file_two.csv", "text/csv"),
        ("models", "loose_coupling.py", "text/x-python"),
        ("models", "tight_coupling.py", "text/x-python"),
        ("models", "tight_coupling_twoway.py", "text/x-python"),
    ]
    values = key_values_of(event)
    assert values["proxymod.configs_count"] == "3"
    assert values["proxymod.config_2.INPUTS.in_dir"] == "inputs/site_b"
    assert values["proxymod.config_1.INPUTS.in_file_two"] == "in_file_two.csv"  # unquoted
    assert values["proxymod.config_1.PROJECT.runtime"] == "0"  # the comment is not the value

    done = subprocess.run(
        [
            *COMMAND,
            "process",
            str(event_path),
            f"--data-dir={data}",
            f"--output-dir={tmp_path}/out",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = Path(done.stdout.strip().splitlines()[-1])
    expected = expected_outputs(EXAMPLES / "data" / "inputs")
    for name, content in expected.items():
        assert (result / "outputs" / name).read_bytes() == content, name
    written = {
        p.relative_to(result / "outputs").as_posix() for p in (result / "outputs").rglob("*.csv")
    }
    assert written == set(expected)


def test_every_pack_is_a_new_event_unless_its_id_is_given(tmp_path: Path) -> None:
    data, configs = nested_dataset(tmp_path)
    first = pack(data, configs, SETTINGS).event
    second = pack(data, configs, SETTINGS).event
    assert first["eventID"] != second["eventID"]
    assert first["eventID"].startswith("metadata.ingest.1101.")
    assert pack(data, configs, SETTINGS, event_id="mine").event["eventID"] == "mine"
    assert first["source"] == "http://metadata.pacifica.org/transactions?_id=1101"
    assert tuple(first) == DELIVERY_KEYS
    assert first["data"][-1] == {"destinationTable": "Transactions._id", "value": 1101}
    assert first["data"][0] == {"destinationTable": "Transactions.submitter", "value": 10}


def test_an_absolute_in_dir_inside_the_data_folder_is_made_relative(tmp_path: Path) -> None:
    data, configs = nested_dataset(tmp_path)
    configs[1].write_text(INI.format(in_dir=data / "inputs" / "site_b"), encoding="utf-8")
    values = pack(data, configs, SETTINGS).key_values
    assert values["proxymod.config_2.INPUTS.in_dir"] == "inputs/site_b"


def test_the_uploader_config_holds_the_same_key_values(tmp_path: Path) -> None:
    data, configs = nested_dataset(tmp_path)
    uploader = tmp_path / "uploader.json"
    done = run_pack(
        data, configs, f"--output={tmp_path / 'event.json'}", f"--uploader-config={uploader}"
    )
    assert done.returncode == 0, done.stderr
    metadata = json.loads(uploader.read_text(encoding="utf-8"))
    schema_path = Path(pacifica.cli.__file__).parent / "config_schema.json"
    jsonschema.validate(metadata, json.loads(schema_path.read_text()))  # what pacifica-cli checks
    event = json.loads((tmp_path / "event.json").read_text(encoding="utf-8"))
    kvs = {e["key"]: e["value"] for e in metadata if e["destinationTable"] == "TransactionKeyValue"}
    assert kvs == key_values_of(event)
    assert len({entry["metaID"] for entry in metadata}) == len(metadata)
    by_table = {entry["destinationTable"]: entry for entry in metadata}
    assert by_table["Transactions.project"]["value"] == "1234a"
    assert by_table["Transactions.instrument"]["value"] == "54"
    assert uploader_metadata({"k": "v"}, "p", "9")[-1]["key"] == "k"
    # pacifica-cli queries only the entries without a value, then walks every entry's results
    decoded = metadata_decode(uploader.read_text(encoding="utf-8"))
    assert [obj.metaID for obj in decoded if obj.query_results is None] == ["logon"]


def test_every_problem_of_the_configs_and_the_folder_is_listed(tmp_path: Path) -> None:
    data, configs = nested_dataset(tmp_path)
    configs[0].write_text(
        INI.format(in_dir="inputs/site_a/2020/run_1").replace("runtime", "runtme"), encoding="utf-8"
    )
    configs[1].write_text(INI.format(in_dir="inputs/site_c"), encoding="utf-8")
    configs[2].write_text(
        INI.format(in_dir="inputs/site_b")
        .replace("in_file_one.csv", "in_file_1.csv")
        .replace("out_dir = outputs", "out_dir = /tmp/outputs"),
        encoding="utf-8",
    )
    with pytest.raises(PackError) as caught:
        pack(data, configs, SETTINGS)
    assert caught.value.problems == [
        f"`{configs[0]}: [PROJECT] runtme`: unknown key; did you mean `runtime`?",
        f"`{configs[1]}: [INPUTS] in_file_one`: {data} has no folder inputs/site_c/ (in_dir); "
        "did you mean `inputs/site_b`?",
        f"`{configs[1]}: [INPUTS] in_file_two`: {data} has no folder inputs/site_c/ (in_dir); "
        "did you mean `inputs/site_b`?",
        f"`{configs[2]}: [OUTPUTS] out_dir`: /tmp/outputs is absolute "
        "(out_dir is relative to the run's result tree, e.g. outputs)",
        f"`{configs[2]}: [INPUTS] in_file_one`: {data}/inputs/site_b has no file in_file_1.csv; "
        "did you mean `in_file_one.csv`?",
    ]


def test_a_refused_pack_writes_nothing_and_says_why(tmp_path: Path) -> None:
    data, configs = nested_dataset(tmp_path)
    shutil.rmtree(data / "models")
    configs[0].write_text("[PROJECT]\nruntime = 1, 2\nfailure = 0\n[OUTPUTS]\nout_dir = o\n")
    output = tmp_path / "event.json"
    done = run_pack(data, configs, f"--output={output}")
    assert done.returncode == 1
    assert not output.exists()
    assert f"config_1 = {configs[0]}" in done.stderr
    assert "[PROJECT] runtime`: is a list (an unquoted comma) (quote the value)" in done.stderr
    assert "holds no .py model file" in done.stderr
