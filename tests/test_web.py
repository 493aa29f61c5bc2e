"""The HTTP API over real HTTP: status codes, bodies, auth, limits, duplicates."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from httpserver import serving
from peers import SilentPeer

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app


@pytest.fixture
def base_url(open_store: Settings) -> Iterator[str]:
    app = create_app(open_store)
    with serving(app) as url:
        yield url


def _queued(task_id: str, timeout: float = 30) -> store.Task | None:
    """The task once it is marked queued (in its INSERT; the mark is taken back if its message
    could not leave); the row as it is when ``timeout`` ran out."""
    deadline = time.monotonic() + timeout
    task = store.get_task(task_id)
    while task is not None and task.queued_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
        task = store.get_task(task_id)
    return task


def _post(url: str, body: Any, **kwargs: Any) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    return requests.post(f"{url}/receive", data=data, headers=headers, timeout=30, **kwargs)


def test_receive_records_and_queues(base_url: str, example_event: dict[str, Any]) -> None:
    answer = _post(base_url, example_event)
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "202 Accepted" and body["duplicate"] is False
    task = _queued(body["taskID"])
    assert task is not None and task.queued_at is not None
    status = requests.get(f"{base_url}/status/{body['taskID']}", timeout=10)
    assert status.status_code == 200 and status.json() == "202 Accepted"
    record = requests.get(f"{base_url}/get/{body['taskID']}", timeout=10).json()
    assert record["event"]["id"] == example_event["eventID"]
    assert record["event"]["source"] == example_event["source"]
    assert record["event"]["specversion"] == "0.1"
    assert record["route"] == "proxymod"


def test_duplicate_delivery_answers_2xx_with_the_same_id(
    base_url: str, example_event: dict[str, Any]
) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: _post(base_url, example_event), range(20)))
    assert all(a.status_code in (200, 202) for a in answers)
    assert [a.status_code for a in answers].count(202) == 1
    assert len({a.json()["taskID"] for a in answers}) == 1
    assert store.list_tasks(1, 50)[1] == 1


def test_unmatched_event_is_accepted_as_422(base_url: str, example_event: dict[str, Any]) -> None:
    orm = dict(example_event, eventType="org.pacifica.metadata.orm")
    answer = _post(base_url, orm)
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "422 Unprocessable Entity"
    record = requests.get(f"{base_url}/get/{body['taskID']}", timeout=10).json()
    assert "org.pacifica.metadata.orm" in record["error"]["message"]
    task = store.get_task(body["taskID"])
    assert task is not None and task.queued_at is None


def test_a_refused_upload_that_asks_for_proxymod_is_queued_for_its_report(
    base_url: str, example_event: dict[str, Any]
) -> None:
    misspelt = json.loads(json.dumps(example_event))
    misspelt["eventID"] = "misspelt"
    for entry in misspelt["data"]:
        if entry.get("key") == "proxymod.config_1.PROJECT.runtime":
            entry["key"] = "proxymod.config_1.PROJECT.runtme"
    answer = _post(base_url, misspelt)
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "202 Accepted"  # the worker rejects it and uploads the report
    task = _queued(body["taskID"])
    assert task is not None and task.queued_at is not None and task.route is None
    # without a transaction to answer, it is refused here and now, as before
    unlinked = dict(misspelt, eventID="unlinked")
    unlinked["data"] = [e for e in misspelt["data"] if e["destinationTable"] != "Transactions._id"]
    assert _post(base_url, unlinked).json()["status"] == "422 Unprocessable Entity"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'"text"',
        b"{}",
        b'{"eventID": "x"}',
        "\udcff".encode("utf-8", "surrogatepass"),
    ],
)
def test_non_cloudevents_get_400_with_a_json_error(base_url: str, body: bytes) -> None:
    answer = _post(base_url, body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["error"] == "InvalidEvent" and error["problems"]
    assert "Traceback" not in answer.text


def test_cloudevents_1_0_structured_and_binary(
    base_url: str, example_event: dict[str, Any]
) -> None:
    structured = {
        "specversion": "1.0",
        "id": "s-1",
        "source": example_event["source"],
        "type": example_event["eventType"],
        "time": "2026-11-27T12:00:05Z",
        "datacontenttype": "application/json",
        "data": example_event["data"],
    }
    answer = _post(base_url, structured, headers={"Content-Type": "application/cloudevents+json"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "202 Accepted"
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": example_event["source"],
        "ce-type": example_event["eventType"],
    }
    answer = _post(base_url, json.dumps(example_event["data"]), headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "202 Accepted"


def test_body_over_the_limit_gets_413(open_store: Settings) -> None:
    small = open_store.with_changes(max_body_bytes=2048)
    with serving(create_app(small)) as url:
        answer = _post(url, b"{" + b" " * 4096 + b"}")
        assert answer.status_code == 413
        assert answer.json()["error"] == "PayloadTooLarge"


def test_lookups_unknown_malformed_and_unknown_path(base_url: str) -> None:
    missing = requests.get(f"{base_url}/status/00000000-0000-0000-0000-000000000000", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    malformed = requests.get(f"{base_url}/get/not-a-uuid", timeout=10)
    assert malformed.status_code == 422 and malformed.json()["error"] == "MalformedTaskId"
    unknown = requests.get(f"{base_url}/no/such/path", timeout=10)
    assert unknown.status_code == 404
    assert unknown.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in unknown.text
    wrong_method = requests.get(f"{base_url}/receive", timeout=10)
    assert wrong_method.status_code == 405


def test_task_list_is_paginated(base_url: str, example_event: dict[str, Any]) -> None:
    ids = [_post(base_url, dict(example_event, eventID=f"e{i}")).json()["taskID"] for i in range(3)]
    first = requests.get(f"{base_url}/?page=1&size=2", timeout=10).json()
    assert [t["taskID"] for t in first["tasks"]] == ids[::-1][:2]
    assert first["total"] == 3 and first["next"] == "/?page=2&size=2"
    second = requests.get(f"{base_url}{first['next']}", timeout=10).json()
    assert [t["taskID"] for t in second["tasks"]] == ids[:1] and second["next"] is None
    bad = requests.get(f"{base_url}/?page=x", timeout=10)
    assert bad.status_code == 422


def test_health_reports_database_and_broker(base_url: str) -> None:
    answer = requests.get(f"{base_url}/health", timeout=30)
    assert answer.status_code == 200
    health = answer.json()
    sandbox = health.pop("sandbox")
    assert health == {"status": "ok", "database": "ok", "broker": "ok"}
    assert sandbox["isolation"] in ("bwrap", "process")
    assert sandbox["seccomp"].startswith("active: refuses memfd_create")
    assert "refused (seccomp)" in sandbox["user_namespaces"]


def test_health_is_503_when_the_broker_is_down(open_store: Settings) -> None:
    down = open_store.with_changes(broker_url="redis://127.0.0.1:1/0")
    with serving(create_app(down)) as url:
        answer = requests.get(f"{url}/health", timeout=60)
    assert answer.status_code == 503
    assert answer.json()["database"] == "ok"
    assert answer.json()["broker"].startswith("unavailable")


def test_event_is_kept_when_the_broker_is_down(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    down = open_store.with_changes(broker_url="redis://127.0.0.1:1/0")
    with serving(create_app(down)) as url:
        answer = _post(url, example_event)
        metrics = requests.get(f"{url}/metrics", timeout=30).text
    assert 'pacifica_dispatcher_messages_total{outcome="left_to_recovery"} 1.0' in metrics
    assert 'pacifica_dispatcher_messages_total{outcome="sent"} 0.0' in metrics
    assert answer.status_code == 202
    task = store.get_task(answer.json()["taskID"])
    assert task is not None and task.status == "202 Accepted" and task.queued_at is None


def test_a_hanging_broker_delays_an_answer_by_the_publish_timeout_only(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """The writer publishes each batch before its requests are answered: a broker that never
    answers holds the first answer for the web's publish timeout, then the pause answers the
    next at once; both rows are recorded and left to recovery (not marked queued)."""
    listener = SilentPeer()
    try:
        hanging = open_store.with_changes(broker_url=f"redis://127.0.0.1:{listener.port}/0")
        app = create_app(hanging)
        with serving(app) as url:
            took = []
            for number in range(2):
                started = time.monotonic()
                answer = _post(url, dict(example_event, eventID=f"hung-{number}"))
                took.append(time.monotonic() - started)
                assert answer.status_code == 202, answer.text
                task = store.get_task(answer.json()["taskID"])
                assert task is not None and task.queued_at is None, "recovery's, not marked"
        assert listener.accepted, "the broker was tried"
        assert took[0] < hanging.publish_timeout_seconds + 3, f"held {took[0]:.1f} s"
        assert took[1] < 1.0, f"the paused broker held the second answer {took[1]:.1f} s"
    finally:
        listener.close()


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_authentication(open_store: Settings, example_event: dict[str, Any], mode: str) -> None:
    secured = open_store.with_changes(
        auth=mode, auth_username="notifier", auth_password="s3cret", auth_token="t0ken"
    )
    good: dict[str, Any] = (
        {"auth": ("notifier", "s3cret")}
        if mode == "basic"
        else {"headers": {"Content-Type": "application/json", "Authorization": "Bearer t0ken"}}
    )
    with serving(create_app(secured)) as url:
        assert _post(url, example_event).status_code == 401
        wrong = _post(url, example_event, auth=("notifier", "nope"))
        assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
        accepted = _post(url, example_event, **good)
        assert accepted.status_code == 202
        task_id = accepted.json()["taskID"]

        # reading the tasks needs the same credentials; health and the description do not
        credentials = {key: value for key, value in good.items() if key == "auth"}
        if mode == "bearer":
            credentials["headers"] = {"Authorization": "Bearer t0ken"}
        for path in ("/", f"/status/{task_id}", f"/get/{task_id}"):
            refused = requests.get(url + path, timeout=10)
            assert refused.status_code == 401, path
            assert refused.json()["message"] == f"{path} needs {mode} credentials"
            assert "WWW-Authenticate" in refused.headers
            assert requests.get(url + path, timeout=10, **credentials).status_code == 200, path
        for path in ("/health", "/openapi.json"):
            assert requests.get(url + path, timeout=10).status_code == 200, path

        # retry and cancel need them too; the reason names the user who cancelled
        for verb in ("retry", "cancel"):
            refused = requests.post(f"{url}/{verb}/{task_id}", timeout=10)
            assert refused.status_code == 401, verb
            assert "WWW-Authenticate" in refused.headers
        assert requests.post(f"{url}/retry/{task_id}", timeout=10, **credentials).status_code == 409
        cancelled = requests.post(f"{url}/cancel/{task_id}", timeout=10, **credentials)
        assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
        who = "notifier" if mode == "basic" else "a bearer-token holder"
        assert cancelled.json()["reason"].startswith(f"cancelled by {who} over HTTP from ")


def test_errors_before_a_resource_is_found_are_json(base_url: str) -> None:
    """CherryPy refuses an HTTP/1.1 request without Host before the app's config applies."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["status"] == 400
