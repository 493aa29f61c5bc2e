"""Tests of examples/: event.json is what ``pack`` makes of configs/ and data/, and stays true."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DELIVERY_KEYS

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
DATA_DIR = EXAMPLES_DIR / "data"
CONFIGS_DIR = EXAMPLES_DIR / "configs"
COMMAND = [sys.executable, "-m", "pacifica.dispatcher_proxymod"]
MODELS = ["loose_coupling", "tight_coupling", "tight_coupling_twoway"]
INPUTS = ["in_file_one.csv", "in_file_two.csv"]


@pytest.fixture(scope="module")
def event() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES_DIR / "event.json").read_text(encoding="utf-8"))
    return loaded


def entries(event: dict[str, Any], table: str) -> list[dict[str, Any]]:
    return [entry for entry in event["data"] if entry["destinationTable"] == table]


def test_event_has_the_notifications_shape(event: dict[str, Any]) -> None:
    assert tuple(event) == DELIVERY_KEYS
    assert event["cloudEventsVersion"] == "0.1"
    assert event["eventType"] == "org.pacifica.metadata.ingest"
    assert event["contentType"] == "application/json"
    assert event["extensions"] == {}
    (transaction,) = entries(event, "Transactions._id")
    txn = transaction["value"]
    assert isinstance(txn, int)
    assert event["source"] == f"http://metadata.pacifica.org/transactions?_id={txn}"
    assert event["eventID"] == f"metadata.ingest.{txn}"
    assert event["data"][-1] == transaction
    for field in ("submitter", "project", "instrument"):
        assert len(entries(event, f"Transactions.{field}")) == 1


def test_event_key_values(event: dict[str, Any]) -> None:
    pairs = [(entry["key"], entry["value"]) for entry in entries(event, "TransactionKeyValue")]
    assert all(isinstance(value, str) for _, value in pairs)
    expected = {
        "proxymod.task": "advance",
        "proxymod.version": "v0.0.1",
        "proxymod.configs_count": "3",
    }
    for number in (1, 2, 3):
        prefix = f"proxymod.config_{number}"
        expected |= {
            f"{prefix}.PROJECT.runtime": "0",
            f"{prefix}.PROJECT.failure": "0",
            f"{prefix}.INPUTS.in_dir": "inputs",
            f"{prefix}.INPUTS.in_file_one": "in_file_one.csv",
            f"{prefix}.INPUTS.in_file_two": "in_file_two.csv",
            f"{prefix}.OUTPUTS.out_dir": "outputs",
        }
    assert len(pairs) == len(expected)
    assert dict(pairs) == expected


def test_event_files_match_the_data_directory(event: dict[str, Any]) -> None:
    files = entries(event, "Files")
    described = {(entry["subdir"], entry["name"]) for entry in files}
    on_disk = {
        (path.parent.relative_to(DATA_DIR).as_posix(), path.name)
        for path in DATA_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert described == on_disk
    assert described == {("inputs", name) for name in INPUTS} | {
        ("models", f"{name}.py") for name in MODELS
    }
    for entry in files:
        content = (DATA_DIR / entry["subdir"] / entry["name"]).read_bytes()
        assert entry["size"] == len(content), entry["name"]
        assert entry["hashtype"] == "sha1"
        assert entry["hashsum"] == hashlib.sha1(content, usedforsecurity=False).hexdigest()
        expected_type = "text/csv" if entry["subdir"] == "inputs" else "text/x-python"
        assert entry["mimetype"] == expected_type
        assert {"_id", "ctime", "mtime"} <= set(entry)
    assert len({entry["_id"] for entry in files}) == len(files)


def _without_times(event: dict[str, Any]) -> dict[str, Any]:
    copy = {key: value for key, value in event.items() if key != "eventTime"}
    copy["data"] = [
        {key: value for key, value in entry.items() if key not in ("ctime", "mtime")}
        for entry in event["data"]
    ]
    return copy


def _pack(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    configs = [f"--config={CONFIGS_DIR / f'config_{n}.ini'}" for n in (1, 2, 3)]
    return subprocess.run(
        [*COMMAND, "pack", str(DATA_DIR), *configs, f"--output={tmp_path / 'event.json'}", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_event_json_is_what_pack_writes_from_the_configs(
    event: dict[str, Any], tmp_path: Path
) -> None:
    done = _pack(tmp_path, "--event-id=metadata.ingest.1101")
    assert done.returncode == 0, done.stderr
    packed = json.loads((tmp_path / "event.json").read_text(encoding="utf-8"))
    assert _without_times(packed) == _without_times(event)


def test_check_finds_the_example_event_true_and_a_stale_one_out(tmp_path: Path) -> None:
    check = [*COMMAND, "check", str(EXAMPLES_DIR / "event.json")]
    done = subprocess.run([*check, f"--data-dir={DATA_DIR}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no problems" in done.stdout

    copy = tmp_path / "data"
    shutil.copytree(DATA_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "inputs" / "in_file_one.csv").open("a") as handle:
        handle.write("2105,1.0\n")
    stale = subprocess.run([*check, f"--data-dir={copy}"], capture_output=True, text=True)
    assert stale.returncode == 1
    assert "`inputs/in_file_one.csv`: is " in stale.stdout and "run pack again" in stale.stdout


@pytest.mark.parametrize("name", INPUTS)
def test_input_csvs_cover_2010_to_2100(name: str) -> None:
    lines = (DATA_DIR / "inputs" / name).read_bytes().decode().split("\n")
    assert lines[0] == "year,value"
    assert lines[-1] == ""
    rows = [line.split(",") for line in lines[1:-1]]
    assert [int(year) for year, _ in rows] == list(range(2010, 2101, 5))
    assert all(float(value) > 0 for _, value in rows)


@pytest.mark.parametrize("name", MODELS)
def test_model_files_define_a_function_named_like_the_file(name: str) -> None:
    tree = ast.parse((DATA_DIR / "models" / f"{name}.py").read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert name in functions
    assert [arg.arg for arg in functions[name].args.args] == ["config_1", "config_2", "config_3"]
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert [(node.module, [alias.name for alias in node.names]) for node in imports] == [
        ("proxymod.model", ["Prox"])
    ]


def test_readme_names_every_example_file() -> None:
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    configs = [f"config_{n}.ini" for n in (1, 2, 3)]
    for name in ["event.json", *configs, *INPUTS, *(f"{model}.py" for model in MODELS)]:
        assert name in readme


def test_demo_prints_the_outcomes_and_the_run_page(tmp_path: Path) -> None:
    demo = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / "demo.py"), str(tmp_path / "run"), "--no-wait"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    table = [line.split() for line in lines if line.startswith("  ")]
    assert table[0] == ["model", "outcome", "took", "isolation"]
    assert [row[:2] for row in table[1:4]] == [[model, "ok"] for model in MODELS]
    assert any("9 charts in plots/" in line for line in lines)
    assert re.fullmatch(r"run page: http://127\.0\.0\.1:\d+/ui/task/[0-9a-f-]{36}", lines[-1])
    assert len(lines) < 15, "a short summary, not the result tree"
