"""Tests for events: CloudEvents 0.1/0.3/1.0 over HTTP -> Event (Pacifica data[]: test_upload)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v03.event import CloudEvent as CloudEventV03
from cloudevents.core.v1.event import CloudEvent
from conftest import delivered_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strategies import json_scalars, json_values, words

from pacifica.dispatcher_proxymod.errors import InvalidEvent
from pacifica.dispatcher_proxymod.events import (
    MAX_JSON_DEPTH,
    Event,
    parse_http,
)

JSON_HEADERS = {"Content-Type": "application/json"}


def encode(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def problems_of(headers: dict[str, str], body: bytes) -> list[str]:
    with pytest.raises(InvalidEvent) as caught:
        parse_http(headers, body)
    return caught.value.problems


# --------------------------------------------------------------------------- CloudEvents 0.1


def test_delivered_event_is_normalised_to_1_0_names() -> None:
    document = delivered_event()
    event = parse_http(JSON_HEADERS, encode(document))
    assert event.specversion == "0.1"
    assert event.id == document["eventID"]
    assert event.source == document["source"]
    assert event.type == "org.pacifica.metadata.ingest"
    assert event.time == document["eventTime"]
    assert event.datacontenttype == "application/json"
    assert event.dataschema is None
    assert event.extensions == {}
    assert event.data == document["data"]


def test_delivered_event_round_trips_to_the_legacy_shape() -> None:
    document = delivered_event()
    assert parse_http(JSON_HEADERS, encode(document)).to_legacy() == document


def test_to_json_and_from_json_round_trip() -> None:
    event = parse_http(JSON_HEADERS, encode(delivered_event()))
    assert Event.from_json(event.to_json()) == event
    assert Event.from_json(event.to_json().encode("utf-8")) == event


def test_legacy_extensions_become_top_level_extension_attributes() -> None:
    document = delivered_event()
    document["extensions"] = {"subscriber": "proxymod", "depth": 2}
    document["eventTypeVersion"] = "1.0"
    document["schemaURL"] = "http://schemas.example/ingest"
    event = parse_http(JSON_HEADERS, encode(document))
    assert event.extensions == {"subscriber": "proxymod", "depth": 2, "eventtypeversion": "1.0"}
    assert event.dataschema == "http://schemas.example/ingest"
    legacy = event.to_legacy()
    assert legacy["extensions"] == {"subscriber": "proxymod", "depth": 2}
    assert legacy["eventTypeVersion"] == "1.0"
    assert legacy["schemaURL"] == "http://schemas.example/ingest"


def test_header_names_are_case_insensitive() -> None:
    event = CloudEvent({"type": "t.x", "source": "/s", "id": "9"}, {"a": 1})
    message = to_structured_event(event)
    shouting = {name.upper(): value for name, value in message.headers.items()}
    assert parse_http(shouting, message.body).id == "9"
    binary = to_binary_event(event)
    mixed = {name.title(): value for name, value in binary.headers.items()}
    assert parse_http(mixed, binary.body).data == {"a": 1}


def test_legacy_problems_are_all_listed() -> None:
    document = {"cloudEventsVersion": "0.2", "eventID": "", "source": 3, "extensions": []}
    problems = problems_of(JSON_HEADERS, encode(document))
    assert any("cloudEventsVersion" in problem and "0.2" in problem for problem in problems)
    assert "eventID must not be empty" in problems
    assert "source must be a string, not a JSON number" in problems
    assert "missing required attribute eventType" in problems
    assert any(problem.startswith("extensions must be an object") for problem in problems)


def test_legacy_event_without_version_is_invalid() -> None:
    document = delivered_event()
    del document["cloudEventsVersion"]
    assert problems_of(JSON_HEADERS, encode(document)) == [
        "missing required attribute cloudEventsVersion"
    ]


def test_legacy_non_string_id_is_invalid() -> None:
    document = delivered_event()
    document["eventID"] = 1008
    assert problems_of(JSON_HEADERS, encode(document)) == [
        "eventID must be a string, not a JSON number"
    ]


# --------------------------------------------------------------------------- CloudEvents 1.0 / 0.3


def sdk_event(version: str = "1.0", **extra: Any) -> Any:
    attributes = {"type": "org.example.thing", "source": "/example", "id": "e-1", **extra}
    data = {"answer": [4, 2]}
    if version == "0.3":
        return CloudEventV03(attributes, data)
    return CloudEvent(attributes, data)


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_structured_mode_is_read_with_the_sdk(version: str) -> None:
    message = to_structured_event(sdk_event(version, colour="blue"))
    event = parse_http(message.headers, message.body)
    assert (event.specversion, event.id, event.source) == (version, "e-1", "/example")
    assert event.type == "org.example.thing"
    assert event.extensions == {"colour": "blue"}
    assert event.data == {"answer": [4, 2]}
    assert event.time is not None and event.time.endswith("Z")


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_binary_mode_is_read_with_the_sdk(version: str) -> None:
    message = to_binary_event(sdk_event(version, colour="blue"))
    event = parse_http(message.headers, message.body)
    assert (event.specversion, event.id, event.type) == (version, "e-1", "org.example.thing")
    assert event.extensions == {"colour": "blue"}
    assert event.data == {"answer": [4, 2]}


def test_binary_mode_percent_decodes_headers() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "caf%C3%A9",
        "ce-source": "/a%20b",
        "ce-type": "t",
        "content-type": "application/json",
    }
    event = parse_http(headers, b"[1]")
    assert (event.id, event.source, event.data) == ("café", "/a b", [1])
    assert event.time is None


def test_binary_mode_with_text_data_keeps_text() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}
    event = parse_http({**headers, "Content-Type": "text/plain"}, "héllo".encode())
    assert event.data == "héllo"
    assert event.datacontenttype == "text/plain"


def test_binary_mode_problems() -> None:
    headers = {"ce-id": "1", "ce-type": "", "content-type": "application/json"}
    problems = problems_of(headers, b"{broken")
    assert "missing required attribute ce-specversion header" in problems
    assert "missing required attribute ce-source header" in problems
    assert "ce-type header must not be empty" in problems
    assert any(problem.startswith("body is not valid JSON") for problem in problems)


def test_binary_mode_non_utf8_text_is_invalid() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}
    problems = problems_of({**headers, "content-type": "text/plain"}, b"\xff\xfe")
    assert problems == ["body is not valid UTF-8 (byte 0)"]


def test_plain_json_with_specversion_is_accepted() -> None:
    message = to_structured_event(sdk_event())
    event = parse_http(JSON_HEADERS, message.body)
    assert (event.specversion, event.id) == ("1.0", "e-1")


def test_base64_data_is_decoded() -> None:
    document = {
        "specversion": "1.0",
        "id": "1",
        "source": "s",
        "type": "t",
        "data_base64": base64.b64encode(b'{"x": 1}').decode(),
    }
    event = parse_http({"content-type": "application/cloudevents+json"}, encode(document))
    assert event.data == {"x": 1}
    assert "data_base64" not in event.extensions


def test_1_0_without_timezone_is_invalid() -> None:
    document = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}
    document["time"] = "2026-11-27T23:24:42"
    problems = problems_of(JSON_HEADERS, encode(document))
    assert problems == [
        "time '2026-11-27T23:24:42' has no timezone (CloudEvents 0.3/1.0 require one)"
    ]


def test_1_0_problems_are_all_listed() -> None:
    document = {"specversion": "2.0", "id": 5, "type": "", "time": "soon"}
    problems = problems_of(JSON_HEADERS, encode(document))
    assert problems == [
        "unknown specversion '2.0' (expected '1.0' or '0.3')",
        "id must be a string, not a JSON number",
        "missing required attribute source",
        "type must not be empty",
        "time 'soon' is not an RFC 3339 timestamp",
    ]


def test_sdk_validation_errors_are_reported() -> None:
    document = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "Bad_Name": 1}
    problems = problems_of(JSON_HEADERS, encode(document))
    assert len(problems) == 1 and problems[0].startswith("Bad_Name:")


def test_batch_and_other_formats_are_refused() -> None:
    batch = {"content-type": "application/cloudevents-batch+json"}
    assert "batch" in problems_of(batch, b"[]")[0]
    xml = {"content-type": "application/cloudevents+xml"}
    assert "unsupported structured event format" in problems_of(xml, b"<e/>")[0]


# --------------------------------------------------------------------------- not CloudEvents


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "body is empty"),
        (b"   ", "body is empty"),
        (b"[]", "the body is a JSON array, not an object"),
        (b"null", "the body is a JSON null, not an object"),
        (b'"event"', "the body is a JSON string, not an object"),
        (b"42", "the body is a JSON number, not an object"),
        (b"\xff{}", "body is not valid UTF-8 (byte 0)"),
        (b'{"a": NaN}', "body is not valid JSON: NaN is not valid JSON"),
        (b'{"a": 1e999}', "body is not valid JSON: number 1e999 is out of range"),
        (b"[" * 100 + b"]" * 100, f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels"),
        (b"[" * 100_000, f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"id": "\\ud800"}', "body holds a string with an unpaired surrogate at $.id"),
        (b'{"id": "a\\uDFFF"}', "body holds a string with an unpaired surrogate at $.id"),
        (b'{"\\udc00": 1}', "body holds a string with an unpaired surrogate at $"),
        (
            b'{"a": ' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1),
            f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels",
        ),
    ],
)
def test_not_a_cloudevent(body: bytes, expected: str) -> None:
    assert problems_of(JSON_HEADERS, body) == [expected]


def test_paired_surrogates_and_the_deepest_allowed_nesting_are_fine() -> None:
    nested = b'{"a": ' * (MAX_JSON_DEPTH - 1) + b"1" + b"}" * (MAX_JSON_DEPTH - 1)
    body = b'{"eventID": "\\ud83d\\ude00", "x": ' + nested + b"}"
    problems = problems_of(JSON_HEADERS, body)
    assert not any("surrogate" in p or "nested" in p for p in problems), problems


def test_huge_integer_is_invalid_json() -> None:
    problems = problems_of(JSON_HEADERS, b'{"eventID": ' + b"9" * 5000 + b"}")
    assert len(problems) == 1 and problems[0].startswith("body is not valid JSON")


def test_object_without_any_version_lists_what_is_missing() -> None:
    problems = problems_of(JSON_HEADERS, b'{"hello": "world"}')
    assert problems == [
        "no specversion (CloudEvents 0.3/1.0) or cloudEventsVersion (CloudEvents 0.1)",
        "missing required attribute id",
        "missing required attribute source",
        "missing required attribute type",
    ]


def test_from_json_rejects_what_to_json_never_wrote() -> None:
    with pytest.raises(InvalidEvent):
        Event.from_json("[1]")
    with pytest.raises(InvalidEvent):
        Event.from_json('{"specversion": "1.0", "id": "x"}')
    with pytest.raises(InvalidEvent):
        Event.from_json(b"\xff")


# --------------------------------------------------------------------------- properties

attribute_names = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
        "cloudEventsVersion",
        "eventID",
        "eventType",
        "eventTime",
        "contentType",
        "schemaURL",
        "extensions",
        "eventTypeVersion",
        "datacontentencoding",
        "subject",
        "ext1",
        "Bad-Ext",
    ]
)
attribute_values = (
    json_values
    | st.sampled_from(
        [
            "1.0",
            "0.3",
            "0.1",
            "",
            "2026-11-27T23:24:42",
            "2026-11-27T23:24:42Z",
            "2026-13-45T99:99:99+25:00",
            "application/json",
            "text/plain",
            "base64",
            "AAE=",
            "e30=",
            "\ud800",
        ]
    )
    | st.text()
)
events_like = st.dictionaries(attribute_names, attribute_values, max_size=10)
header_names = st.sampled_from(
    [
        *("content-type", "Content-Type", "ce-specversion", "ce-id", "ce-source", "ce-type"),
        *("ce-time", "ce-", "CE-Ext", "ce-datacontenttype", "ce-data", "x-other"),
    ]
)
header_values = st.sampled_from(
    [
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "application/cloudevents+xml",
        "text/plain; charset=utf-8",
        "1.0",
        "0.3",
        "0.1",
        "",
        "%FF%FE",
        "%C3%A9",
        "2026-11-27T23:24:42Z",
        "2026-11-27T23:24:42",
        "not-a-time",
    ]
) | st.text(max_size=12)
header_sets = st.dictionaries(header_names, header_values, max_size=8)


def json_bytes(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8", "surrogatepass")


zoned_times = st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())
legacy_events = st.fixed_dictionaries(
    {
        "cloudEventsVersion": st.just("0.1"),
        "eventID": words,
        "source": words,
        "eventType": words,
    },
    optional={
        "eventTime": st.datetimes().map(lambda moment: moment.isoformat()),
        "contentType": st.just("application/json"),
        "schemaURL": words,
        "eventTypeVersion": words,
        "extensions": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
        "data": json_values,
    },
)
structured_events = st.fixed_dictionaries(
    {
        "specversion": st.sampled_from(["1.0", "0.3"]),
        "id": words,
        "source": words,
        "type": words,
    },
    optional={
        "time": zoned_times,
        "datacontenttype": st.sampled_from(["application/json", "text/plain"]),
        "subject": words,
        "ext1": json_scalars,
        "data": json_values,
    },
)
binary_headers = st.fixed_dictionaries(
    {
        "ce-specversion": st.sampled_from(["1.0", "0.3"]),
        "ce-id": words.map(quote),
        "ce-source": words.map(quote),
        "ce-type": words.map(quote),
    },
    optional={
        "ce-time": zoned_times.map(quote),
        "content-type": st.sampled_from(["application/json", "text/plain"]),
        "ce-ext1": st.text(max_size=10).map(quote),
    },
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A valid event with up to two attributes replaced by odd values or removed."""
    document = dict(draw(base))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        name = draw(st.sampled_from(sorted(document)) | attribute_names)
        if draw(st.booleans()):
            document.pop(name, None)
        else:
            document[name] = draw(attribute_values)
    return document


document_bodies = (mutated(legacy_events) | mutated(structured_events)).map(json_bytes)
bodies = (
    document_bodies
    | st.binary(max_size=200)
    | json_values.map(json_bytes)
    | events_like.map(json_bytes)
    | st.builds(
        lambda body, cut: body[:cut],
        document_bodies,
        st.integers(min_value=0, max_value=400),
    )
    | st.integers(min_value=1, max_value=5000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.integers(min_value=1, max_value=6000).map(lambda digits: b"9" * digits)
    | st.text().map(lambda text: text.encode("utf-8", "surrogatepass"))
)
requests = (
    st.tuples(st.just({"content-type": "application/json"}), bodies)
    | st.tuples(st.just({"content-type": "application/cloudevents+json"}), bodies)
    | st.tuples(header_sets, bodies)
    | st.tuples(mutated(binary_headers), json_values.map(json_bytes) | st.binary(max_size=50))
)


def assert_usable(event: Event) -> None:
    """An accepted event must serialise, read back and render its legacy shape."""
    assert isinstance(event.id, str) and event.id
    assert isinstance(event.source, str) and event.source
    assert isinstance(event.type, str) and event.type
    assert event.specversion in ("0.1", "0.3", "1.0")
    assert Event.from_json(event.to_json()) == event
    json.dumps(event.to_legacy(), allow_nan=False)


@settings(
    max_examples=2000,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests)
def test_parse_http_only_ever_returns_an_event_or_raises_invalid_event(
    request: tuple[dict[str, str], bytes],
) -> None:
    headers, body = request
    try:
        event = parse_http(headers, body)
    except InvalidEvent as error:
        assert error.problems and all(isinstance(problem, str) for problem in error.problems)
        return
    assert_usable(event)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(
    document=mutated(legacy_events) | mutated(structured_events) | events_like,
    content_type=header_values,
)
def test_event_shaped_documents_are_parsed_or_refused_cleanly(
    document: dict[str, Any], content_type: str
) -> None:
    try:
        event = parse_http({"Content-Type": content_type}, json_bytes(document))
    except InvalidEvent as error:
        assert error.problems
        return
    assert_usable(event)


@settings(max_examples=800, derandomize=True, deadline=None)
@given(
    field=st.sampled_from(["eventID", "source", "eventType", "eventTime", "extensions", "data"]),
    value=attribute_values,
)
def test_mutated_delivered_event_is_parsed_or_refused(field: str, value: Any) -> None:
    document = delivered_event()
    document[field] = value
    try:
        event = parse_http(JSON_HEADERS, json_bytes(document))
    except InvalidEvent as error:
        assert error.problems
        return
    assert_usable(event)


@pytest.mark.parametrize("attribute", ["eventID", "source", "eventType"])
def test_control_characters_in_attributes_are_refused(attribute: str) -> None:
    document = {
        "cloudEventsVersion": "0.1",
        "eventType": "org.pacifica.metadata.ingest",
        "source": "/pacifica/metadata/ingest",
        "eventID": "1",
        "data": [],
    }
    document[attribute] = "a\u0000b"
    with pytest.raises(InvalidEvent, match="control character"):
        parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 18446744073709551616, "b": -9223372036854775809}',  # orjson: floats
        b'{"a": 18446744073709551615, "b": -9223372036854775808}',  # orjson: ints
        b'{"a": 1' + b"0" * 400 + b"}",  # orjson refuses; Python keeps it
        b'{"a": 1e19, "b": 12345678901234567890.5, "c": 9223372036854775807}',
        b'{"a": [1, {"b": 1' + b"0" * 30 + b'}], "c": "' + b"7" * 25 + b'"}',
        b'{"a": 1e400}',
        b'{"a": NaN}',
        b'{"a": "\\ud800"}',
        b'{"\\udcff": 1}',
        b'{"a": "\xed\xa0\x80"}',
        b"\xef\xbb\xbf{}",
        b"  ",
        b"[" * 65 + b"]" * 65,
        b"[" * 64 + b"]" * 64,
        b"[" * 2000 + b"]" * 2000,
        b'{"a": 1.5e308, "b": -0.0, "c": 1e-400, "d": 0.1, "e": [1, 2.5, true, null]}',
        b'{"a": 1, "a": 2}',
    ],
)
def test_orjson_and_the_standard_parser_agree(body: bytes) -> None:
    """load_json reads with orjson first: the value, or the problem, is the standard one's."""
    from pacifica.dispatcher_proxymod.events import jsontext

    fast: list[str] = []
    slow: list[str] = []
    value = jsontext.load_json(body, fast)
    expected = jsontext._load_json_slowly(body, slow, "body")
    assert fast == slow
    assert repr(value) == repr(expected)  # the same types too (1 is not 1.0)
