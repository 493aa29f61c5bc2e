"""Tests for proxymod/validate.py: every problem of a request at once, none said twice."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from conftest import edited_event

from pacifica.dispatcher_proxymod.events import Event, parse_http
from pacifica.dispatcher_proxymod.proxymod.validate import (
    rejection_reasons,
    request_problems,
    selection,
)
from pacifica.dispatcher_proxymod.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "event.json"
SETTINGS = Settings()


def example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return document


def as_event(document: dict[str, Any]) -> Event:
    return parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())


def test_the_example_has_no_problem() -> None:
    event = as_event(example())
    assert request_problems(event, SETTINGS) == []
    assert rejection_reasons(event, SETTINGS) == []
    chosen = selection(event, SETTINGS)
    assert [entry.name for entry in chosen.inputs] == ["in_file_one.csv", "in_file_two.csv"]
    assert len(chosen.models) == 3


def test_a_misspelt_key_is_named_once_with_its_correction() -> None:
    document = edited_event(
        example(),
        renames={"proxymod.config_1.PROJECT.runtime": "proxymod.config_1.PROJECT.runtme"},
    )
    assert rejection_reasons(as_event(document), SETTINGS) == [
        "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?",
        "`proxymod.config_1.PROJECT.runtime`: missing (PROJECT needs runtime, failure); "
        "`proxymod.config_1.PROJECT.runtme` is given: is it misspelt?",
    ]


def test_route_config_and_file_problems_are_listed_together() -> None:
    document = edited_event(
        example(),
        values={
            "proxymod.version": "1",
            "proxymod.config_2.INPUTS.in_file_two": "in_file_2.csv",
            "proxymod.config_3.PROJECT.failure": "yes",
        },
    )
    reasons = rejection_reasons(as_event(document), SETTINGS)
    assert reasons == [
        "`proxymod.version`: is 1 (expected v0.0.1)",
        "`proxymod.config_3.PROJECT.failure`: must be 0 or 1 (given 'yes')",
    ]
    document = edited_event(document, values={"proxymod.config_3.PROJECT.failure": "0"})
    assert rejection_reasons(as_event(document), SETTINGS) == [
        "`proxymod.version`: is 1 (expected v0.0.1)",
        "`proxymod.config_2.INPUTS.in_file_two`: the upload has no text/csv File "
        "inputs/in_file_2.csv (inputs/ holds in_file_one.csv, in_file_two.csv); "
        "did you mean `in_file_two.csv`?",
    ]


def test_file_problems_say_what_the_upload_has_instead() -> None:
    document = example()
    for entry in document["data"]:
        if entry.get("name") == "in_file_one.csv":
            entry["mimetype"] = "text/plain"
        if entry.get("mimetype") == "text/x-python":
            entry["subdir"] = "model"
    assert rejection_reasons(as_event(document), SETTINGS) == [
        "`proxymod.config_1.INPUTS.in_file_one`: the upload has no text/csv File "
        "inputs/in_file_one.csv; inputs/in_file_one.csv is there as text/plain; "
        "also `proxymod.config_2.INPUTS.in_file_one`, `proxymod.config_3.INPUTS.in_file_one`",
        "`models/`: the upload has no text/x-python File; "
        "models go under models/, not `model/loose_coupling.py`",
    ]
    no_route = copy.deepcopy(document)
    for entry in no_route["data"]:
        if entry.get("name") == "in_file_one.csv":
            entry["mimetype"] = "text/csv"
    assert rejection_reasons(as_event(no_route), SETTINGS) == [
        "`models/`: the upload has no text/x-python File; "
        "models go under models/, not `model/loose_coupling.py`"
    ]


def test_an_event_that_is_no_upload_lists_only_its_own_problems() -> None:
    document = dict(example(), eventType="org.pacifica.metadata.orm", data={"created": [1]})
    assert rejection_reasons(as_event(document), SETTINGS) == [
        "`eventType`: is org.pacifica.metadata.orm (expected org.pacifica.metadata.ingest)",
        "`data`: is not a list of Pacifica metadata entries",
    ]


def test_a_missing_inputs_section_of_config_1_is_the_routes_problem() -> None:
    document = example()
    document["data"] = [
        entry
        for entry in document["data"]
        if not str(entry.get("key", "")).startswith("proxymod.config_1.INPUTS.")
    ]
    assert rejection_reasons(as_event(document), SETTINGS) == [
        f"`proxymod.config_1.INPUTS.{key}`: missing TransactionKeyValue"
        for key in ("in_dir", "in_file_one", "in_file_two")
    ]
