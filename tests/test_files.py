"""Tests for proxymod/files.py: choosing the inputs and models, and saying what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pacifica.dispatcher_proxymod.errors import UnprocessableEvent
from pacifica.dispatcher_proxymod.events import parse_upload
from pacifica.dispatcher_proxymod.proxymod.config import parse_configs
from pacifica.dispatcher_proxymod.proxymod.files import file_problems, select_files

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "event.json"


def example_data() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(EXAMPLE.read_text(encoding="utf-8"))["data"]
    return data


def problems_of(data: list[dict[str, Any]]) -> list[str]:
    upload = parse_upload(data)
    _, problems = file_problems(upload, parse_configs(upload.key_values, 100), 100)
    return [str(problem) for problem in problems]


def test_the_example_selects_each_input_once_and_every_model() -> None:
    upload = parse_upload(example_data())
    chosen = select_files(upload, parse_configs(upload.key_values, 100), 100)
    assert [(e.subdir, e.name) for e in chosen.inputs] == [
        ("inputs", "in_file_one.csv"),
        ("inputs", "in_file_two.csv"),
    ]
    assert [e.name for e in chosen.models] == [
        "loose_coupling.py",
        "tight_coupling.py",
        "tight_coupling_twoway.py",
    ]


def test_a_misspelt_in_dir_gets_the_upload_s_folder() -> None:
    data = example_data()
    for entry in data:
        if entry.get("key") == "proxymod.config_2.INPUTS.in_dir":
            entry["value"] = "input"
    assert problems_of(data) == [
        "`proxymod.config_2.INPUTS.in_file_one`: the upload has no text/csv File "
        "input/in_file_one.csv; the upload has `inputs/in_file_one.csv`: is in_dir right?",
        "`proxymod.config_2.INPUTS.in_file_two`: the upload has no text/csv File "
        "input/in_file_two.csv; the upload has `inputs/in_file_two.csv`: is in_dir right?",
    ]


def test_a_folder_the_upload_lacks_is_named_with_the_nearest() -> None:
    data = [e for e in example_data() if e.get("subdir") != "inputs"]
    data.append(dict(example_data()[-2], subdir="inputz", name="other.csv", mimetype="text/csv"))
    problems = problems_of(data)
    assert problems[0].startswith(
        "`proxymod.config_1.INPUTS.in_file_one`: the upload has no text/csv File "
        "inputs/in_file_one.csv; the upload has no folder inputs/; did you mean `inputz/`?"
    )


def test_select_files_raises_every_problem() -> None:
    data = [e for e in example_data() if e.get("mimetype") != "text/x-python"]
    upload = parse_upload(data)
    with pytest.raises(UnprocessableEvent) as caught:
        select_files(upload, parse_configs(upload.key_values, 100), 100)
    assert caught.value.problems == [
        "`models/`: the upload has no text/x-python File "
        "(each model is a models/<function>.py file)"
    ]
