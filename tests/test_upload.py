"""Tests for events.upload: Pacifica data[] -> Upload (transaction, key/values, files)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import delivered_event
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values, words

from pacifica.dispatcher_proxymod.errors import UnprocessableEvent
from pacifica.dispatcher_proxymod.events import FileEntry, Upload, parse_upload

_TABLES = ("Transactions._id", "Transactions.project", "Transactions.submitter", "Unknown")


def test_parse_upload_reads_the_delivered_event() -> None:
    upload = parse_upload(delivered_event()["data"])
    assert upload.transaction_id == 1008
    assert (upload.submitter, upload.project, upload.instrument) == (10, "1234a", 54)
    assert upload.key_values["proxymod.task"] == "advance"
    assert upload.key_values["proxymod.version"] == "1"
    model = next(entry for entry in upload.files if entry.name == "model.py")
    assert model == FileEntry(
        name="model.py",
        subdir="models",
        mimetype="text/x-python",
        hashtype="sha1",
        hashsum="fe88bc079377c8db858f1b666061a5d545286f14",
        size=42,
        file_id=1016,
        mtime="2026-11-27T23:24:41",
        ctime="2026-11-27T23:24:41",
    )
    assert model.path == "models/model.py"


def test_parse_upload_converts_values_and_defaults() -> None:
    data = [
        {"destinationTable": "TransactionKeyValue", "key": "n", "value": 3},
        {"destinationTable": "TransactionKeyValue", "key": "f", "value": 2.5},
        {"destinationTable": "TransactionKeyValue", "key": "b", "value": True},
        {"destinationTable": "TransactionKeyValue", "key": "n", "value": "3"},
        {"destinationTable": "Transactions._id", "value": "77"},
        {"destinationTable": "Files", "name": "a.csv", "mimetype": "text/csv", "hashsum": "h"},
        {"destinationTable": "Users", "value": "ignored"},
    ]
    upload = parse_upload(data)
    assert upload == Upload(
        transaction_id=77,
        submitter=None,
        project=None,
        instrument=None,
        key_values={"n": "3", "f": "2.5", "b": "true"},
        files=(FileEntry("a.csv", "", "text/csv", "sha1", "h", None, None, None, None),),
    )
    assert upload.files[0].path == "a.csv"


def test_parse_upload_lists_every_problem() -> None:
    data = [
        "not an entry",
        {"value": 1},
        {"destinationTable": "Files", "subdir": 5, "size": -1, "_id": True},
        {"destinationTable": "TransactionKeyValue", "key": "k", "value": "1"},
        {"destinationTable": "TransactionKeyValue", "key": "k", "value": "2"},
        {"destinationTable": "TransactionKeyValue", "key": "", "value": "2"},
        {"destinationTable": "TransactionKeyValue", "key": "nested", "value": {"a": 1}},
        {"destinationTable": "TransactionKeyValue", "key": "none"},
        {"destinationTable": "Transactions._id", "value": 1.5},
        {"destinationTable": "Transactions.project", "value": "p1"},
        {"destinationTable": "Transactions.project", "value": "p2"},
        {"destinationTable": "Transactions.submitter", "value": False},
    ]
    with pytest.raises(UnprocessableEvent) as caught:
        parse_upload(data)
    problems = caught.value.problems
    expected = [
        "data[0] is a JSON string, not an object",
        "data[1] has no destinationTable string",
        "data[2]: Files entry has no name",
        "data[2]: Files entry has no hashsum",
        "data[2]: Files entry has no mimetype",
        "data[2]: Files subdir must be a string, not a JSON number",
        "data[2]: Files size must be a non-negative integer, not a JSON number",
        "data[2]: Files _id must be a non-negative integer, not a JSON boolean",
        "data[4]: TransactionKeyValue 'k' given twice ('1' and '2')",
        "data[5]: TransactionKeyValue needs a non-empty string key",
        "data[6]: TransactionKeyValue 'nested' value must be a string or number, not a JSON object",
        "data[7]: TransactionKeyValue 'none' has no value",
        "data[8]: Transactions._id value must be an integer, not a JSON number",
        "data[10]: Transactions.project given twice ('p1' and 'p2')",
        "data[11]: Transactions.submitter value must be an integer or a non-empty string",
    ]
    assert problems == expected


@pytest.mark.parametrize("data", [None, {}, "x", 3, {"destinationTable": "Files"}])
def test_parse_upload_needs_a_list(data: Any) -> None:
    with pytest.raises(UnprocessableEvent, match="data must be a list"):
        parse_upload(data)


def test_parse_upload_exact_repeats_are_harmless() -> None:
    entry = {"destinationTable": "TransactionKeyValue", "key": "k", "value": "v"}
    assert parse_upload([entry, dict(entry)]).key_values == {"k": "v"}


# --------------------------------------------------------------------------- properties

file_entries = st.fixed_dictionaries(
    {
        "destinationTable": st.just("Files"),
        "name": words,
        "mimetype": st.sampled_from(["text/csv", "text/x-python"]),
        "hashsum": st.text(alphabet="0123456789abcdef", min_size=1, max_size=40),
    },
    optional={
        "subdir": st.sampled_from(["", "inputs", "models/", "a/b/"]) | st.text(max_size=10),
        "hashtype": st.just("sha1"),
        "size": st.integers(min_value=0, max_value=2**63),
        "_id": st.integers(min_value=0, max_value=2**63),
        "mtime": words,
        "ctime": words,
    },
)
key_value_entries = st.fixed_dictionaries(
    {
        "destinationTable": st.just("TransactionKeyValue"),
        "key": st.sampled_from(["proxymod.task", "proxymod.configs_count"]) | words,
        "value": words | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    }
)
transaction_entries = st.fixed_dictionaries(
    {
        "destinationTable": st.sampled_from(list(_TABLES)),
        "value": st.integers(min_value=0) | words,
    }
)


@st.composite
def odd_entry(draw: st.DrawFn) -> Any:
    """A plausible entry with one field replaced by any JSON value, or any JSON value."""
    entry: dict[str, Any] = draw(file_entries | key_value_entries | transaction_entries)
    if draw(st.booleans()):
        return draw(json_values)
    entry[draw(st.sampled_from(sorted(entry)))] = draw(json_values)
    return entry


plausible_entries = file_entries | key_value_entries | transaction_entries
upload_data = (
    st.lists(plausible_entries, max_size=10)
    | st.lists(plausible_entries | odd_entry(), max_size=10)
    | json_values
)


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(data=upload_data)
def test_parse_upload_only_ever_returns_an_upload_or_raises_unprocessable(data: Any) -> None:
    try:
        upload = parse_upload(data)
    except UnprocessableEvent as error:
        assert error.problems and all(isinstance(problem, str) for problem in error.problems)
        return
    assert all(isinstance(value, str) for value in upload.key_values.values())
    assert all(isinstance(entry, FileEntry) and entry.name for entry in upload.files)
