"""``POST /receive`` through the WSGI fast path (web/fastpath.py), over real HTTP on a free port
with the real task store and broker (``TEST_DATABASE_URL``, ``TEST_BROKER_URL``), and as a
plain WSGI callable for what waitress never lets through (a body without a length)."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import peewee
import pytest
import requests
from httpserver import serving
from prometheus_client.parser import text_string_to_metric_families
from test_web import _queued

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import Event, parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app
from pacifica.dispatcher_proxymod.web.fastpath import FastPathApplication, read_body

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def app(open_store: Settings) -> FastPathApplication:
    return create_app(open_store)


@pytest.fixture
def url(app: FastPathApplication) -> Iterator[str]:
    with serving(app) as base:
        yield base


def _post(base: str, body: Any, **kwargs: Any) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = kwargs.pop("headers", JSON_HEADERS)
    return requests.post(f"{base}/receive", data=data, headers=headers, timeout=60, **kwargs)


def _raw(base: str, request: bytes) -> tuple[bytes, bytes]:
    host, port = base.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def _samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{base}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _call(app: FastPathApplication, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """One request through the WSGI callable itself (no server)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def _environ(body: bytes, **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/receive",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
    }
    environ.update(extra)
    return environ


def test_new_event_202_then_duplicate_200_with_the_first_id(
    url: str, example_event: dict[str, Any]
) -> None:
    first = _post(url, example_event)
    assert first.status_code == 202
    body = first.json()
    assert body == {"taskID": body["taskID"], "status": "202 Accepted", "duplicate": False}
    assert first.headers["Location"] == f"/get/{body['taskID']}"
    assert first.headers["Content-Type"] == "application/json"
    task = _queued(body["taskID"])
    assert task is not None and task.queued_at is not None and task.route == "proxymod"
    again = _post(url, example_event)
    assert again.status_code == 200
    assert again.json() == {"taskID": body["taskID"], "status": "202 Accepted", "duplicate": True}
    assert again.headers["Location"] == first.headers["Location"]
    # the task the fast path recorded reads back through CherryPy
    record = requests.get(url + first.headers["Location"], timeout=30).json()
    assert record["event"]["id"] == example_event["eventID"] and record["route"] == "proxymod"


def test_concurrent_deliveries_of_one_event_make_one_task(
    url: str, example_event: dict[str, Any]
) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: _post(url, example_event), range(32)))
    assert sorted({a.status_code for a in answers}) == [200, 202]
    assert [a.status_code for a in answers].count(202) == 1
    assert len({a.json()["taskID"] for a in answers}) == 1
    assert store.list_tasks(1, 50)[1] == 1


def test_unmatched_event_is_recorded_422_and_answered_202(
    url: str, example_event: dict[str, Any]
) -> None:
    answer = _post(url, dict(example_event, eventType="org.pacifica.metadata.orm"))
    assert answer.status_code == 202
    assert answer.json()["status"] == "422 Unprocessable Entity"
    task = store.get_task(answer.json()["taskID"])
    assert task is not None and task.queued_at is None


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(url: str, method: str) -> None:
    answer = requests.request(method, f"{url}/receive", timeout=30)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.json() == {
        "error": "MethodNotAllowed",
        "message": "POST a CloudEvent to /receive",
    }


def test_head_gets_405_without_a_body(url: str) -> None:
    head, body = _raw(url, b"HEAD /receive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: POST" in head
    assert body == b""


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b'{"eventID": "x"}', b'{"a": NaN}', b"[" * 100 + b"]" * 100]
)
def test_a_body_that_is_no_cloudevent_gets_400_with_its_problems(url: str, body: bytes) -> None:
    answer = _post(url, body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["error"] == "InvalidEvent" and error["problems"]
    assert error["message"].startswith("not a CloudEvent: ")
    assert store.list_tasks(1, 10)[1] == 0


def test_binary_mode_headers_reach_the_parser(url: str, example_event: dict[str, Any]) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "binary-1",
        "ce-source": example_event["source"],
        "ce-type": example_event["eventType"],
        "Content-Type": "application/json",
    }
    answer = _post(url, example_event["data"], headers=headers)
    assert answer.status_code == 202, answer.text
    task = store.get_task(answer.json()["taskID"])
    assert task is not None and task.event_id == "binary-1" and task.specversion == "1.0"


def test_limits_411_and_413(open_store: Settings, example_event: dict[str, Any]) -> None:
    small = open_store.with_changes(max_body_bytes=2048)
    with serving(create_app(small)) as base:
        over = _post(base, b"{" + b" " * 4096 + b"}")
        assert over.status_code == 413
        # (waitress answers it before the application sees the request)
        assert over.json()["error"] == "PayloadTooLarge"
        assert over.json()["message"] == "the body is over 2048 bytes"
        chunks = (part for part in [b"{", b" " * 4096, b"}"])
        chunked = requests.post(f"{base}/receive", data=chunks, headers=JSON_HEADERS, timeout=30)
        assert chunked.status_code == 413 and chunked.json()["error"] == "PayloadTooLarge"
        head, body = _raw(base, b"POST /receive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 411 ")
        assert json.loads(body) == {
            "error": "Length Required",
            "message": "Client must specify Content-Length",
            "status": 411,
        }
        # a chunked body under the limit is read whole
        event = json.dumps(dict(example_event, data=[])).encode()
        pieces = (event[i : i + 100] for i in range(0, len(event), 100))
        accepted = requests.post(f"{base}/receive", data=pieces, headers=JSON_HEADERS, timeout=30)
        assert accepted.status_code == 202, accepted.text


def test_a_body_without_a_length_is_bounded_as_it_is_read(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """Under a WSGI server that passes a chunked body through (no CONTENT_LENGTH)."""
    small = open_store.with_changes(max_body_bytes=4096)
    app = create_app(small)
    status, _, body = _call(
        app, _environ(b"{" + b" " * 200_000 + b"}", HTTP_TRANSFER_ENCODING="chunked")
    )
    assert status.startswith("413 ") and json.loads(body)["error"] == "PayloadTooLarge"
    event = json.dumps(dict(example_event, data=[])).encode()
    status, headers, body = _call(app, _environ(event, HTTP_TRANSFER_ENCODING="chunked"))
    assert status == "202 Accepted" and headers["Location"] == f"/get/{json.loads(body)['taskID']}"
    assert read_body(io.BytesIO(b"abcdef"), 4, 10) == b"abcd"
    assert read_body(io.BytesIO(b"abc"), None, 10) == b"abc"


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_credentials(open_store: Settings, example_event: dict[str, Any], mode: str) -> None:
    secured = open_store.with_changes(
        auth=mode, auth_username="notifier", auth_password="s3cret", auth_token="t0ken"
    )
    good: dict[str, Any] = (
        {"auth": ("notifier", "s3cret")}
        if mode == "basic"
        else {"headers": {**JSON_HEADERS, "Authorization": "Bearer t0ken"}}
    )
    with serving(create_app(secured)) as base:
        for bad in ({}, {"auth": ("notifier", "nope")}, {"headers": {"Authorization": "Bearer x"}}):
            refused = _post(base, example_event, **bad)
            assert refused.status_code == 401
            assert refused.json() == {
                "error": "Unauthorized",
                "message": f"/receive needs {mode} credentials",
            }
            challenge = "Bearer" if mode == "bearer" else 'Basic realm="dispatcher"'
            assert refused.headers["WWW-Authenticate"] == challenge
        assert store.list_tasks(1, 10)[1] == 0
        assert _post(base, example_event, **good).status_code == 202


def test_503_with_retry_after_when_the_store_cannot_record(
    url: str, example_event: dict[str, Any]
) -> None:
    """The task table is renamed away for a moment: a real failure of the real database."""
    table = store.Task._meta.table_name
    database = store.database_proxy
    with store.connection():
        database.execute_sql(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        answer = _post(url, example_event)
    finally:
        with store.connection():
            database.execute_sql(f"ALTER TABLE {table}_away RENAME TO {table}")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json() == {
        "error": "DatabaseUnavailable",
        "message": "the task store cannot record events now",
    }
    # nothing half-written: the retry is a new task
    assert _post(url, example_event).status_code == 202


def test_the_fast_path_counts_its_answers_and_latency(
    url: str, example_event: dict[str, Any]
) -> None:
    before = _samples(url)
    assert _post(url, example_event).status_code == 202
    assert _post(url, example_event).status_code == 200
    assert _post(url, b"{").status_code == 400
    assert requests.get(f"{url}/receive", timeout=30).status_code == 405
    after = _samples(url)

    def grew(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    # 200: the duplicate, and the first GET /metrics (counted once it was answered)
    for code, count in (("202", 1), ("200", 2), ("400", 1), ("405", 1)):
        assert grew("pacifica_dispatcher_http_requests_total", (("code", code),)) == count, code
    assert grew("pacifica_dispatcher_receive_seconds_count") == 4
    assert grew("pacifica_dispatcher_receive_seconds_sum") > 0


def test_each_request_is_logged_as_cherrypy_logs_it_without_its_body(
    url: str, example_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    marker = f"body-marker-{uuid.uuid4().hex}"
    event = json.loads(json.dumps(example_event))
    event["data"].append({"destinationTable": "TransactionKeyValue", "key": "m", "value": marker})
    caplog.set_level(logging.DEBUG)
    answer = _post(url, event, headers={**JSON_HEADERS, "User-Agent": "probe/1"})
    assert answer.status_code == 202
    access = [r for r in caplog.records if r.name.startswith("cherrypy.access")]
    assert len(access) == 1
    line = access[0].getMessage()
    assert '"POST /receive HTTP/1.1" 202 ' in line and line.endswith('"" "probe/1"')
    assert line.startswith("127.0.0.1 - - [")
    assert any("recorded and queued" in r.getMessage() for r in caplog.records)
    # (peewee's query lines carry it: the service's log filter drops them, test_quiet.py)
    assert not [r for r in caplog.records if marker in r.getMessage() and r.name != "peewee"]


def test_everything_else_goes_to_cherrypy(url: str) -> None:
    assert requests.get(f"{url}/health", timeout=30).status_code == 200
    missing = requests.post(f"{url}/receiver", data=b"{}", timeout=30)
    assert missing.status_code == 404 and missing.json()["status"] == 404
    # HTTP/1.1 without Host: CherryPy's own 400, as before the fast path
    head, body = _raw(
        url, b"POST /receive HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    assert head.startswith(b"HTTP/1.1 400 ") and json.loads(body)["status"] == 400
    # the trailing slash CherryPy's dispatcher accepted is served too
    slash = requests.post(f"{url}/receive/", data=b"{}", headers=JSON_HEADERS, timeout=30)
    assert slash.status_code == 400 and slash.json()["error"] == "InvalidEvent"


def test_large_bodies_at_the_limit_at_once(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """16 bodies of the largest accepted size together: every one recorded."""
    limit = 512 * 1024
    roomy = open_store.with_changes(max_body_bytes=limit)
    events = []
    for index in range(16):
        event = dict(example_event, eventID=f"large-{index}")
        padding = limit - len(json.dumps(event)) - len(', "pad": ""')
        event["pad"] = "x" * padding
        events.append(json.dumps(event).encode())
    assert all(len(body) == limit for body in events)
    with (
        serving(create_app(roomy)) as base,
        ThreadPoolExecutor(16) as pool,
    ):
        answers = list(pool.map(lambda body: _post(base, body), events))
    assert [a.status_code for a in answers] == [202] * 16
    assert store.list_tasks(1, 50)[1] == 16


def test_a_writer_that_cannot_commit_in_time_gets_503_and_the_retry_200(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """Another transaction holds the task table: the intake's writer waits for it longer than
    a request may wait (503 with Retry-After, nothing answered 2xx before its commit); once
    the lock is gone the row commits, and the retry is the same task (200)."""
    database: Any = store.database_proxy.obj
    if isinstance(database, peewee.MySQLDatabase):
        pytest.skip("the writer's lock wait on MariaDB is store/intake's test")
    hasty = open_store.with_changes(intake_wait_seconds=0.5)
    locked, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with store.connection():
            if isinstance(database, peewee.SqliteDatabase):
                transaction = database.atomic(lock_type="IMMEDIATE")
            else:
                transaction = database.atomic()
            with transaction:
                if not isinstance(database, peewee.SqliteDatabase):
                    table = store.Task._meta.table_name
                    database.execute_sql(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
                locked.set()
                release.wait(30)
        store.close_database()
        done.set()

    with serving(create_app(hasty)) as base:
        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert locked.wait(30)
        try:
            busy = _post(base, example_event)
        finally:
            release.set()
            assert done.wait(30)
        assert busy.status_code == 503, busy.text
        assert busy.headers["Retry-After"] == "5"
        assert busy.json()["error"] == "DatabaseUnavailable"
        retry = _post(base, example_event)
        assert retry.status_code in (200, 202), retry.text
        assert store.list_tasks(1, 10)[1] == 1


def test_a_cloudevents_0_1_body_is_kept_as_it_came(url: str, example_event: dict[str, Any]) -> None:
    """No second serialisation: the row keeps the body; every reader reads the same event."""
    event = dict(example_event, eventTypeVersion="2", custom="c", extensions={"x": 1})
    body = json.dumps(event, indent=1, ensure_ascii=False).encode()  # not our own spelling
    answer = _post(url, body)
    assert answer.status_code == 202, answer.text
    task = store.get_task(answer.json()["taskID"])
    assert task is not None and task.event_json == body.decode()
    expected = parse_http(JSON_HEADERS, body)
    assert Event.from_json(task.event_json) == expected  # what the worker reads
    shown = requests.get(url + answer.headers["Location"], timeout=30).json()["event"]
    assert shown["extensions"] == {"custom": "c", "x": 1, "eventtypeversion": "2"}
    assert shown["data"] == example_event["data"] and shown["specversion"] == "0.1"
    assert shown["datacontenttype"] == example_event["contentType"]
    # a CloudEvents 1.0 event is kept normalised, as before
    structured = {
        "specversion": "1.0",
        "id": "kept-1",
        "source": example_event["source"],
        "type": example_event["eventType"],
        "data": example_event["data"],
    }
    headers = {"Content-Type": "application/cloudevents+json"}
    answer = _post(url, structured, headers=headers)
    assert answer.status_code == 202, answer.text
    task = store.get_task(answer.json()["taskID"])
    assert task is not None
    assert json.loads(task.event_json)["specversion"] == "1.0"
    assert Event.from_json(task.event_json).id == "kept-1"


def test_the_web_process_does_not_load_the_workers_modules() -> None:
    """Memory: the handler and its report writers (RO-Crate) stay in the worker."""
    code = (
        "import sys, pacifica.dispatcher_proxymod.cli, pacifica.dispatcher_proxymod.web\n"
        "names = ('pacifica.dispatcher_proxymod.execution', 'rocrate',\n"
        "         'pacifica.dispatcher_proxymod.proxymod.handler')\n"
        "print([name for name in names if name in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1", "wrk/4.2", "it's", 'say "hi"', "back\\slash", "tab\there", "é", "\x00\x7f", ""],
)
def test_an_access_log_atom_is_escaped_as_cherrypy_escapes_it(value: str) -> None:
    from pacifica.dispatcher_proxymod.web.fastpath import _escape

    cherrypy_way = repr(value.replace('"', '\\"').encode("utf8"))[2:-1].replace("\\\\", "\\")
    assert _escape(value) == cherrypy_way
