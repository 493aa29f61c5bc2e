"""The OpenAPI description against the live service: schemathesis over real HTTP.

The service runs as in production (the WSGI app under cheroot, the task store on the database
under test, the embedded broker by default). schemathesis sends generated requests, valid and
invalid, to every operation: no answer may be a 5xx, and none may contradict the description
(status code, content type, headers, body schema). Examples are bounded and derandomized, so a
run is the same every time. Run it with ``TEST_DATABASE_URL`` set to PostgreSQL too: that is
where NUL characters and over-long attributes used to give 500 and 503.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from httpserver import serving
from hypothesis import HealthCheck, settings

from pacifica.dispatcher_proxymod import openapi
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app

#: Generated requests per operation and phase; enough to reach every branch of web/.
MAX_EXAMPLES = 60


@pytest.fixture
def live_url(open_store: Settings, example_event: dict[str, Any]) -> Iterator[str]:
    """The service over real HTTP, holding one real task so lookups can find something."""
    with serving(create_app(open_store)) as url:
        answer = requests.post(f"{url}/receive", json=example_event, timeout=30)
        assert answer.status_code == 202, answer.text
        yield url


# The description the service serves (test_served_document_is_the_description checks they are
# the same). Loaded here rather than from the live URL: schemathesis's fixture-based loader does
# not work with pytest 9.
schema = schemathesis.openapi.from_dict(openapi.description())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_service_keeps_to_its_description(case: Any, live_url: str) -> None:
    excluded = []
    if case.operation.path == "/receive":
        # The event reader is lenient on purpose where the description cannot be exact (a
        # 0.3 event's base64 encoding with data that is not base64, ...), so a request outside
        # the body schema may still be accepted. Every answer is checked all the same.
        excluded.append(schemathesis.checks.negative_data_rejection)
    case.call_and_validate(base_url=live_url, excluded_checks=excluded)


# ----------------------------------------------------------------------------- the document


def test_served_document_is_the_description(live_url: str) -> None:
    answer = requests.get(f"{live_url}/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == openapi.description()
    assert json.loads(json.dumps(openapi.description())) == openapi.description()


def test_description_names_every_resource_of_the_api() -> None:
    paths = openapi.description()["paths"]
    assert set(paths) == {
        "/",
        "/receive",
        "/status/{taskID}",
        "/get/{taskID}",
        "/logs/{taskID}",
        "/metrics",
        "/retry/{taskID}",
        "/cancel/{taskID}",
        "/health",
        "/openapi.json",
    }
    assert {method for item in paths.values() for method in item} == {"get", "post"}
    receive = paths["/receive"]["post"]["responses"]
    assert {"200", "202", "400", "401", "413", "503"} <= set(receive)


def test_description_is_a_fresh_copy() -> None:
    first = openapi.description()
    first["paths"].clear()
    assert openapi.description()["paths"]


def test_task_statuses_match_the_store() -> None:
    from pacifica.dispatcher_proxymod.states import TaskStatus

    enum = openapi.description()["components"]["schemas"]["TaskStatus"]["enum"]
    assert enum == [status.value for status in TaskStatus]


# ----------------------------------------------------------------------------- found by fuzzing


@pytest.mark.parametrize(
    "query",
    ["page=1&page=2", "size=5&size=6", "page=100000000000000000000", "page=1000000001"],
)
def test_odd_page_parameters_get_422_not_500(live_url: str, query: str) -> None:
    answer = requests.get(f"{live_url}/?{query}", timeout=10)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "InvalidParameter"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", b"--x\r\n"),
        ("application/x-www-form-urlencoded", b"a=1&b=2"),
        ("text/plain", b"not json"),
    ],
)
def test_non_json_bodies_get_400_not_500(live_url: str, content_type: str, body: bytes) -> None:
    answer = requests.post(
        f"{live_url}/receive", data=body, headers={"Content-Type": content_type}, timeout=10
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "InvalidEvent"


def test_form_encoded_cloudevent_is_read_as_its_body(
    live_url: str, example_event: dict[str, Any]
) -> None:
    """A JSON body sent with a form content type still reaches the event parser whole."""
    event = dict(example_event, eventID="form-typed")
    answer = requests.post(
        f"{live_url}/receive",
        data=json.dumps(event),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize("path", ["/", "/status/x", "/get/x", "/health", "/openapi.json"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_with_allow(live_url: str, path: str, method: str) -> None:
    answer = requests.request(method, f"{live_url}{path}", timeout=10)
    assert answer.status_code == 405, answer.text
    assert answer.headers["Allow"] == "GET, HEAD"
    assert answer.json()["error"] == "MethodNotAllowed"


@pytest.mark.parametrize(
    "changes",
    [
        {"eventID": "nul-\u0000"},
        {"source": "/pacifica/metadata/ingest\u0000"},
        {"eventID": "long-time", "eventTime": "2026-11-27T12:00:05" + " " * 100},
    ],
)
def test_events_the_store_cannot_keep_get_400_not_5xx(
    live_url: str, example_event: dict[str, Any], changes: dict[str, str]
) -> None:
    """Control characters are refused as CloudEvents forbids them; long times are kept."""
    answer = requests.post(f"{live_url}/receive", json=dict(example_event, **changes), timeout=10)
    if "\u0000" in "".join(changes.values()):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "InvalidEvent"
        assert "control character" in answer.json()["problems"][0]
    else:
        assert answer.status_code == 202, answer.text


def _validate(live_url: str, path: str, task_id: str) -> None:
    operation = schema[path]["GET"]
    case = operation.Case(path_parameters={"taskID": task_id})
    response = case.call_and_validate(base_url=live_url)
    assert response.status_code == 200


@pytest.mark.parametrize("final", ["ok", "failed"])
def test_real_task_records_match_the_description(live_url: str, final: str) -> None:
    """Generated ids never name a task: check the records of real tasks, before and after."""
    from datetime import UTC, datetime

    from pacifica.dispatcher_proxymod import states, store
    from pacifica.dispatcher_proxymod.sandbox import ModelRun

    listing = requests.get(f"{live_url}/", timeout=10).json()
    task_id = listing["tasks"][0]["taskID"]
    for path in ("/status/{taskID}", "/get/{taskID}"):
        _validate(live_url, path, task_id)
    now = datetime.now(UTC)
    run = ModelRun("loose_coupling", now, now, 0, None, "ok", None, None, "bwrap")
    failing = ModelRun("tight_coupling", now, now, None, 9, "killed", None, "killed", "process")
    outcome = (
        store.Outcome(states.TaskStatus.OK, models=[run.to_json()], result_location="/r/1")
        if final == "ok"
        else store.Outcome(
            states.TaskStatus.FAILED,
            models=[run.to_json(), failing.to_json()],
            error_type="ModelFailed",
            error_message="model tight_coupling: was killed by SIGKILL",
            error_traceback="Traceback ...",
        )
    )
    assert store.claim(task_id, "test-worker", 60) is store.Claim.CLAIMED
    assert store.finish(task_id, "test-worker", outcome)
    for path in ("/status/{taskID}", "/get/{taskID}"):
        _validate(live_url, path, task_id)
    record = requests.get(f"{live_url}/get/{task_id}", timeout=10).json()
    assert record["status"] == outcome.status.value
    assert len(record["models"]) == len(outcome.models)
