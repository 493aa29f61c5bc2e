"""Tests for routing: the proxymod jsonpath2 expression, source settings and explanations."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import DELIVERED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonpath2.path import Path as JSONPath

from pacifica.dispatcher_proxymod.errors import SettingsError
from pacifica.dispatcher_proxymod.events import Event, parse_http
from pacifica.dispatcher_proxymod.proxymod import routing
from pacifica.dispatcher_proxymod.settings import Settings, load_settings

STOCK_SOURCE = "http://metadata.pacifica.org/transactions?_id=1101"
FIXTURE_SOURCE = "/pacifica/metadata/ingest"
DEFAULTS = Settings()


def key_value(key: str, value: Any) -> dict[str, Any]:
    return {"destinationTable": "TransactionKeyValue", "key": key, "value": value}


def file_entry(file_id: int, subdir: str, name: str, mimetype: str) -> dict[str, Any]:
    return {
        "destinationTable": "Files",
        "_id": file_id,
        "subdir": subdir,
        "name": name,
        "mimetype": mimetype,
        "hashtype": "sha1",
        "hashsum": f"{file_id:040x}",
        "size": 100 + file_id,
        "mtime": "2026-11-27T23:24:41",
        "ctime": "2026-11-27T23:24:41",
    }


def proxymod_document(source: str = STOCK_SOURCE) -> dict[str, Any]:
    """A complete proxymod ingest event: three configs, two CSV inputs, three models."""
    data: list[dict[str, Any]] = [
        {"destinationTable": "Transactions.submitter", "value": 10},
        {"destinationTable": "Transactions.project", "value": "1234a"},
        {"destinationTable": "Transactions.instrument", "value": 54},
        key_value("proxymod.task", "advance"),
        key_value("proxymod.version", "v0.0.1"),
        key_value("proxymod.configs_count", "3"),
    ]
    for number, runtime in ((1, "2"), (2, "2"), (3, "5")):
        prefix = f"proxymod.config_{number}"
        data += [
            key_value(f"{prefix}.PROJECT.runtime", runtime),
            key_value(f"{prefix}.PROJECT.failure", "0"),
            key_value(f"{prefix}.OUTPUTS.out_dir", "outputs/"),
        ]
    data += [
        key_value("proxymod.config_1.INPUTS.in_dir", "inputs/"),
        key_value("proxymod.config_1.INPUTS.in_file_one", "in_file_one.csv"),
        key_value("proxymod.config_1.INPUTS.in_file_two", "in_file_two.csv"),
        file_entry(1, "inputs", "in_file_one.csv", "text/csv"),
        file_entry(2, "inputs", "in_file_two.csv", "text/csv"),
        file_entry(3, "models", "loose_coupling.py", "text/x-python"),
        file_entry(4, "models", "tight_coupling.py", "text/x-python"),
        file_entry(5, "models/", "tight_coupling_twoway.py", "text/x-python"),
        {"destinationTable": "Transactions._id", "value": 1101},
    ]
    return {
        "cloudEventsVersion": "0.1",
        "eventType": "org.pacifica.metadata.ingest",
        "source": source,
        "eventID": "metadata.ingest.1101",
        "eventTime": "2026-11-27T23:24:42",
        "extensions": {},
        "contentType": "application/json",
        "data": data,
    }


def as_event(document: dict[str, Any]) -> Event:
    return parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())


def entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = document["data"]
    return data


def entry_for_key(document: dict[str, Any], key: str) -> dict[str, Any]:
    return next(entry for entry in entries(document) if entry.get("key") == key)


def entry_named(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in entries(document) if entry.get("name") == name)


@functools.lru_cache(maxsize=8)
def parsed(expression: str) -> JSONPath:
    return JSONPath.parse_str(expression)


def notifications_would_match(expression: str, event: Event) -> bool:
    """What Pacifica Notifications does with a subscription's jsonpath."""
    return bool(list(parsed(expression).match(event.to_legacy())))


# --------------------------------------------------------------------------- the shipped file


def test_shipped_file_is_the_default_subscription() -> None:
    route = routing.load_proxymod_route()
    assert route.name == "proxymod"
    assert routing.subscription_expression(DEFAULTS) == route.expression
    assert DEFAULTS.accepted_sources == routing.SHIPPED_SOURCES


def test_shipped_file_holds_the_shipped_source_condition_once() -> None:
    expression = routing.load_proxymod_route().expression
    assert expression.count(routing._source_condition(routing.SHIPPED_SOURCES)) == 1


def test_shipped_file_parses_with_jsonpath2() -> None:
    JSONPath.parse_str(routing.load_proxymod_route().expression)


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize("source", [STOCK_SOURCE, FIXTURE_SOURCE])
def test_full_proxymod_event_matches(source: str) -> None:
    event = as_event(proxymod_document(source))
    route = routing.match(event, DEFAULTS)
    assert route is not None and route.name == "proxymod"
    assert routing.explain_mismatch(event, DEFAULTS) == []
    assert notifications_would_match(routing.load_proxymod_route().expression, event)


def test_event_in_1_0_binary_mode_matches_too() -> None:
    document = proxymod_document()
    headers = {
        "ce-specversion": "1.0",
        "ce-id": document["eventID"],
        "ce-source": document["source"],
        "ce-type": document["eventType"],
        "ce-time": "2026-11-27T23:24:42Z",
        "content-type": "application/json",
    }
    event = parse_http(headers, json.dumps(document["data"]).encode())
    assert routing.match(event, DEFAULTS) is not None


@pytest.mark.parametrize(
    ("in_dir", "subdir"),
    [("inputs/", "inputs"), ("inputs/", "inputs/"), ("inputs", "inputs"), ("inputs", "inputs/")],
)
def test_input_subdir_may_differ_by_a_trailing_slash(in_dir: str, subdir: str) -> None:
    document = proxymod_document()
    entry_for_key(document, "proxymod.config_1.INPUTS.in_dir")["value"] = in_dir
    for name in ("in_file_one.csv", "in_file_two.csv"):
        entry_named(document, name)["subdir"] = subdir
    event = as_event(document)
    assert routing.match(event, DEFAULTS) is not None
    assert notifications_would_match(routing.load_proxymod_route().expression, event)


def test_delivered_event_does_not_match_and_says_why() -> None:
    if DELIVERED.is_file():
        event = as_event(json.loads(DELIVERED.read_text(encoding="utf-8")))
    else:  # the same facts: version "1" and no configs
        document = proxymod_document()
        document["data"] = [
            entry
            for entry in entries(document)
            if not str(entry.get("key", "")).startswith("proxymod.config")
        ]
        entry_for_key(document, "proxymod.version")["value"] = "1"
        event = as_event(document)
    assert routing.match(event, DEFAULTS) is None
    reasons = routing.explain_mismatch(event, DEFAULTS)
    assert "`proxymod.version`: is 1 (expected v0.0.1)" in reasons
    assert "`proxymod.configs_count`: missing TransactionKeyValue" in reasons
    assert "`proxymod.config_1.INPUTS.in_dir`: missing TransactionKeyValue" in reasons
    assert not notifications_would_match(routing.load_proxymod_route().expression, event)


def drop_key(key: str) -> Any:
    def change(document: dict[str, Any]) -> None:
        document["data"] = [entry for entry in entries(document) if entry.get("key") != key]

    return change


def set_key(key: str, value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        entry_for_key(document, key)["value"] = value

    return change


def set_file(name: str, field: str, value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        entry_named(document, name)[field] = value

    return change


def set_models(field: str, value: str) -> Any:
    def change(document: dict[str, Any]) -> None:
        for entry in entries(document):
            if entry.get("mimetype") == "text/x-python":
                entry[field] = value

    return change


def set_top(field: str, value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        document[field] = value

    return change


MISSING_PIECES = {
    "task": (
        drop_key("proxymod.task"),
        "`proxymod.task`: missing TransactionKeyValue (expected advance)",
    ),
    "task value": (
        set_key("proxymod.task", "retreat"),
        "`proxymod.task`: is retreat (expected advance)",
    ),
    "version": (
        set_key("proxymod.version", "v0.0.2"),
        "`proxymod.version`: is v0.0.2 (expected v0.0.1)",
    ),
    "configs_count": (
        drop_key("proxymod.configs_count"),
        "`proxymod.configs_count`: missing TransactionKeyValue",
    ),
    **{
        key: (
            drop_key(f"proxymod.config_1.{key}"),
            f"`proxymod.config_1.{key}`: missing TransactionKeyValue",
        )
        for key in (
            "PROJECT.runtime",
            "PROJECT.failure",
            "INPUTS.in_dir",
            "INPUTS.in_file_one",
            "INPUTS.in_file_two",
            "OUTPUTS.out_dir",
        )
    },
    "input one mimetype": (
        set_file("in_file_one.csv", "mimetype", "text/plain"),
        "`proxymod.config_1.INPUTS.in_file_one`: no text/csv File named in_file_one.csv "
        "in subdir inputs/",
    ),
    "input two elsewhere": (
        set_file("in_file_two.csv", "subdir", "other"),
        "`proxymod.config_1.INPUTS.in_file_two`: no text/csv File named in_file_two.csv "
        "in subdir inputs/",
    ),
    "input one renamed": (
        set_key("proxymod.config_1.INPUTS.in_file_one", "absent.csv"),
        "`proxymod.config_1.INPUTS.in_file_one`: no text/csv File named absent.csv "
        "in subdir inputs/",
    ),
    "models elsewhere": (
        set_models("subdir", "code"),
        "`models/`: no text/x-python File in subdir models/",
    ),
    "models mimetype": (
        set_models("mimetype", "text/plain"),
        "`models/`: no text/x-python File in subdir models/",
    ),
    "orm event": (
        set_top("eventType", "org.pacifica.metadata.orm"),
        "`eventType`: is org.pacifica.metadata.orm (expected org.pacifica.metadata.ingest)",
    ),
    "other source": (
        set_top("source", "http://elsewhere.example/transactions?_id=1"),
        "`source`: http://elsewhere.example/transactions?_id=1 is not accepted (accepted: "
        "/pacifica/metadata/ingest, http://metadata.pacifica.org/transactions?_id=)",
    ),
    "data not a list": (
        set_top("data", {"destinationTable": "Files"}),
        "`data`: is not a list of Pacifica metadata entries",
    ),
}


@pytest.mark.parametrize("piece", sorted(MISSING_PIECES))
def test_each_missing_piece_stops_the_match_with_a_reason(piece: str) -> None:
    change, reason = MISSING_PIECES[piece]
    document = proxymod_document()
    change(document)
    event = as_event(document)
    assert routing.match(event, DEFAULTS) is None
    assert reason in routing.explain_mismatch(event, DEFAULTS)
    assert not notifications_would_match(routing.load_proxymod_route().expression, event)


def test_orm_event_lists_only_its_own_reasons() -> None:
    document = {
        "cloudEventsVersion": "0.1",
        "eventType": "org.pacifica.metadata.orm",
        "source": "http://metadata.pacifica.org/users?_id=10",
        "eventID": "metadata.orm.users.10",
        "data": {"created": [10], "updated": [], "deleted": []},
    }
    event = as_event(document)
    assert routing.match(event, DEFAULTS) is None
    assert routing.explain_mismatch(event, DEFAULTS) == [
        "`eventType`: is org.pacifica.metadata.orm (expected org.pacifica.metadata.ingest)",
        "`source`: http://metadata.pacifica.org/users?_id=10 is not accepted (accepted: "
        "/pacifica/metadata/ingest, http://metadata.pacifica.org/transactions?_id=)",
        "`data`: is not a list of Pacifica metadata entries",
    ]


# --------------------------------------------------------------------------- configured sources


@pytest.mark.parametrize(
    ("accepted", "source", "expected"),
    [
        (("/pacifica/metadata/ingest",), "/pacifica/metadata/ingest", True),
        (("/pacifica/metadata/ingest",), "/pacifica/metadata/ingest/2", False),
        (
            ("http://meta.example/transactions?_id=",),
            "http://meta.example/transactions?_id=7",
            True,
        ),
        (("http://meta.example/transactions?_id=",), "http://meta.example/users?_id=7", False),
        (("https://meta.example/",), "https://meta.example/transactions/7", True),
        (("https://meta.example/t*",), "https://meta.example/txn-7", True),
        (("https://meta.example/t*",), "https://meta.example/u", False),
        (("*",), "anything at all", True),
        ((), "anything at all", True),
        (("/a", "/b"), "/b", True),
        (("/a", "/b"), "/c", False),
    ],
)
def test_configured_sources(accepted: tuple[str, ...], source: str, expected: bool) -> None:
    configured = DEFAULTS.with_changes(accepted_sources=accepted)
    event = as_event(proxymod_document(source))
    assert routing.source_accepted(source, accepted) is expected
    assert (routing.match(event, configured) is not None) is expected
    expression = routing.subscription_expression(configured)
    assert notifications_would_match(expression, event) is expected
    reasons = routing.explain_mismatch(event, configured)
    assert (reasons == []) is expected


def test_sources_read_from_the_environment() -> None:
    configured = load_settings({"DISPATCHER_ACCEPTED_SOURCES": "/x, https://y.example/"})
    assert configured.accepted_sources == ("/x", "https://y.example/")
    expression = routing.subscription_expression(configured)
    assert '$["source"] = "/x"' in expression
    assert '$["source"][substring(0, 18)] = "https://y.example/"' in expression
    assert "metadata.pacifica.org" not in expression


@pytest.mark.parametrize("bad", ['/say"hi"', "back\\slash", "tab\there"])
def test_sources_jsonpath2_cannot_express_are_a_settings_error(bad: str) -> None:
    configured = DEFAULTS.with_changes(accepted_sources=(bad,))
    with pytest.raises(SettingsError, match="DISPATCHER_ACCEPTED_SOURCES"):
        routing.subscription_expression(configured)


def test_non_ascii_source_prefix_counts_characters() -> None:
    configured = DEFAULTS.with_changes(accepted_sources=("/métadonnées/",))
    event = as_event(proxymod_document("/métadonnées/7"))
    assert notifications_would_match(routing.subscription_expression(configured), event)
    assert routing.match(event, configured) is not None


# --------------------------------------------------------------------------- odd events

odd_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
fields = st.sampled_from(
    ["destinationTable", "key", "value", "name", "subdir", "mimetype", "hashsum"]
)


@st.composite
def damaged_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The full proxymod event with a few entries or fields replaced by odd values."""
    document = copy.deepcopy(proxymod_document(draw(st.sampled_from([STOCK_SOURCE, "/x"]))))
    data: list[Any] = document["data"]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if draw(st.booleans()):
            data[index] = draw(odd_values)
        elif isinstance(data[index], dict):
            data[index][draw(fields)] = draw(odd_values)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        document["data"] = draw(odd_values)
    return document


@settings(
    max_examples=500,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(document=damaged_documents())
def test_match_and_explanation_agree_and_never_raise(document: dict[str, Any]) -> None:
    event = as_event(document)
    route = routing.match(event, DEFAULTS)
    reasons = routing.explain_mismatch(event, DEFAULTS)
    assert (route is None) == bool(reasons)
    expression = routing.subscription_expression(DEFAULTS)
    assert notifications_would_match(expression, event) is (route is not None)


def test_data_as_an_object_is_refused_although_jsonpath2_walks_into_it() -> None:
    document = proxymod_document()
    as_object = {str(index): entry for index, entry in enumerate(entries(document))}
    event = dataclasses.replace(as_event(document), data=as_object)
    assert notifications_would_match(routing.load_proxymod_route().expression, event)
    assert routing.match(event, DEFAULTS) is None
    assert routing.explain_mismatch(event, DEFAULTS) == [
        "`data`: is not a list of Pacifica metadata entries"
    ]


def test_quick_mismatch_agrees_with_the_full_match_on_the_examples() -> None:
    config = Settings()
    example = json.loads((Path(__file__).parent.parent / "examples" / "event.json").read_text())
    event = parse_http({"Content-Type": "application/json"}, json.dumps(example).encode())
    assert routing.quick_mismatch(event, config) == [] and routing.match(event, config) is not None
    orm = dict(example, eventType="org.pacifica.metadata.orm")
    event = parse_http({"Content-Type": "application/json"}, json.dumps(orm).encode())
    assert routing.quick_mismatch(event, config) and routing.match(event, config) is None
    assert routing.quick_mismatch(event, config) == routing.explain_mismatch(event, config)


# --------------------------------------------------------------------------- the broad expression


def test_broad_file_parses_and_holds_the_shipped_source_condition_once() -> None:
    expression = routing.broad_expression(DEFAULTS)
    JSONPath.parse_str(expression)
    assert expression == routing._resource_text(routing.BROAD_RESOURCE)
    assert expression.count(routing._source_condition(routing.SHIPPED_SOURCES)) == 1


def _broad_cases() -> list[tuple[str, dict[str, Any], bool]]:
    good = proxymod_document()
    misspelt = copy.deepcopy(good)
    entry_for_key(misspelt, "proxymod.config_1.PROJECT.runtime")["key"] = (
        "proxymod.config_1.PROJECT.runtme"
    )
    only_version = proxymod_document()
    only_version["data"] = [
        entry for entry in entries(only_version) if entry.get("key") != "proxymod.task"
    ]
    no_proxymod = copy.deepcopy(good)
    no_proxymod["data"] = [
        entry
        for entry in entries(no_proxymod)
        if not str(entry.get("key", "")).startswith("proxymod.")
    ]
    look_alike = copy.deepcopy(no_proxymod)
    look_alike["data"].append(key_value("proxymodel.task", "advance"))
    result = copy.deepcopy(good)
    result["data"].append(key_value("proxymod.result", "failed"))
    orm = dict(copy.deepcopy(good), eventType="org.pacifica.metadata.orm")
    stranger = dict(copy.deepcopy(good), source="http://elsewhere.example/txn/1")
    return [
        ("complete", good, True),
        ("misspelt key", misspelt, True),
        ("no proxymod.task", only_version, True),
        ("no proxymod key", no_proxymod, False),
        ("a look-alike prefix", look_alike, False),
        ("our own result upload", result, False),
        ("another event type", orm, False),
        ("a source not accepted", stranger, False),
    ]


@pytest.mark.parametrize(("label", "document", "expected"), _broad_cases())
def test_broad_expression_takes_every_upload_that_asks_for_proxymod(
    label: str, document: dict[str, Any], expected: bool
) -> None:
    event = as_event(document)
    assert notifications_would_match(routing.broad_expression(DEFAULTS), event) is expected, label
    assert routing.asks_for_proxymod(event, DEFAULTS) is expected, label


def test_misspelt_key_matches_broad_but_not_strict() -> None:
    document = proxymod_document()
    entry_for_key(document, "proxymod.config_1.PROJECT.runtime")["key"] = (
        "proxymod.config_1.PROJECT.runtme"
    )
    event = as_event(document)
    assert routing.asks_for_proxymod(event, DEFAULTS)
    assert routing.match(event, DEFAULTS) is None
    assert not notifications_would_match(routing.subscription_expression(DEFAULTS), event)


def test_broad_expression_follows_the_accepted_sources() -> None:
    configured = Settings(accepted_sources=("https://meta.example/txn*",))
    expression = routing.broad_expression(configured)
    assert '"https://meta.example/txn"' in expression
    event = as_event(proxymod_document("https://meta.example/txn/7"))
    assert notifications_would_match(expression, event)
    assert routing.asks_for_proxymod(event, configured)
    assert not routing.asks_for_proxymod(event, DEFAULTS)


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(document=damaged_documents())
def test_broad_check_agrees_with_jsonpath2(document: dict[str, Any]) -> None:
    event = as_event(document)
    try:
        expected = notifications_would_match(routing.broad_expression(DEFAULTS), event)
    except Exception:  # jsonpath2 on hostile shapes; Notifications would not deliver it
        return
    if isinstance(event.data, list):
        assert routing.asks_for_proxymod(event, DEFAULTS) is expected


def test_a_missing_required_key_names_its_misspelling() -> None:
    document = proxymod_document()
    entry_for_key(document, "proxymod.config_1.PROJECT.runtime")["key"] = (
        "proxymod.config_1.PROJECT.runtme"
    )
    reasons = routing.explain_mismatch(as_event(document), DEFAULTS)
    assert reasons == [
        "`proxymod.config_1.PROJECT.runtime`: missing TransactionKeyValue; "
        "`proxymod.config_1.PROJECT.runtme` is given: is it misspelt?"
    ]
