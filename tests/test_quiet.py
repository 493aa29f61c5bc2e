"""Credentials and bodies never reach a log, at any level, on any error path.

The real server runs at DEBUG with Basic authentication; hostile and broken requests carry
markers in their credentials, headers and bodies; afterwards its whole log is searched for them.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from httpserver import serving
from test_server import exchange, start_server, stop_server

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.quiet import MASK, QuietFilter, secrets_of
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app

PASSWORD = "pw-" + uuid.uuid4().hex
BODY_MARK = "body-" + uuid.uuid4().hex
WRONG_MARK = "wrong-" + uuid.uuid4().hex
TOKEN_MARK = "token-" + uuid.uuid4().hex


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hostile_requests(example_event: dict[str, Any]) -> list[tuple[bytes, int]]:
    """(raw request, the status it must get) for every error path we can reach from outside."""
    good = basic("notifier", PASSWORD).encode()
    event = dict(example_event, eventID=f"quiet-{uuid.uuid4()}")
    event["data"] = [
        *event["data"],
        {"destinationTable": "TransactionKeyValue", "key": "mark", "value": BODY_MARK},
    ]
    body = json.dumps(event).encode()
    mark = BODY_MARK.encode()

    def post(headers: bytes, payload: bytes, auth: bytes = good) -> bytes:
        return (
            b"POST /receive HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"Authorization: "
            + auth
            + b"\r\nConnection: close\r\n"
            + headers
            + b"\r\n"
            + payload
        )

    length = f"Content-Length: {len(body)}\r\n".encode()
    close = b"Authorization: " + good + b"\r\nConnection: close\r\n"
    return [
        (post(length, body), 202),  # recorded: peewee's DEBUG query line would hold the body
        (post(length, body, auth=basic("notifier", WRONG_MARK).encode()), 401),
        (post(length, body, auth=b"Basic \xc3\xa9" + WRONG_MARK.encode() + b"\xff"), 401),
        (post(length, body, auth=b"Bearer " + TOKEN_MARK.encode()), 401),
        (post(b"Content-Length: 9\r\n", b"{" + mark), 400),  # not JSON
        (post(b"Content-Length: 5\r\nContent-Length: 6\r\n", mark), 400),
        (post(b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + mark + b"\r\n0\r\n\r\n"), 400),
        (post(b"X-Secret " + mark + b": 1\r\n", b""), 400),  # an invalid header line
        (post(b"X-Echo: " + mark + b"\r\n" + b"X-N: 1\r\n" * 120, b""), 431),
        (post(b"Content-Length: 999999999\r\n", mark), 413),
        (b"BREW /receive HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n", 405),
        (b"GET /no/such/path HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n", 404),
    ]


def test_hostile_requests_leave_no_credential_or_body_in_the_debug_log(
    settings: Settings, tmp_path: Path, example_event: dict[str, Any]
) -> None:
    server = start_server(
        settings,
        tmp_path,
        DISPATCHER_LOG_LEVEL="debug",
        DISPATCHER_AUTH="basic",
        DISPATCHER_AUTH_USERNAME="notifier",
        DISPATCHER_AUTH_PASSWORD=PASSWORD,
    )
    try:
        for raw, status in hostile_requests(example_event):
            assert exchange(server.port, raw)[0] == status, raw[:120]
        assert requests.get(server.url + "/health", timeout=10).status_code == 200
    finally:
        stop_server(server)
    log = server.log_text()
    assert " DEBUG " in log, "the server logged at DEBUG"
    assert '"POST /receive HTTP/1.1" 202' in log, "the accepted event was logged as a request"
    for secret in (PASSWORD, BODY_MARK, WRONG_MARK, TOKEN_MARK):
        assert secret not in log
    encoded = base64.b64encode(f"notifier:{PASSWORD}".encode()).decode()
    assert encoded not in log


def test_an_unexpected_500_is_json_and_logs_no_header(
    open_store: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secured = open_store.with_changes(auth="bearer", auth_token=TOKEN_MARK)

    def broken(*_: Any) -> Any:
        raise RuntimeError("the task lookup failed")

    monkeypatch.setattr(store, "get_task", broken)
    caplog.set_level(logging.DEBUG)
    with serving(create_app(secured)) as url:
        answer = requests.get(
            url + f"/get/{uuid.uuid4()}",
            headers={"Authorization": f"Bearer {TOKEN_MARK}"},
            timeout=10,
        )
    assert answer.status_code == 500
    assert answer.json()["status"] == 500 and "Traceback" not in answer.text
    assert "the task lookup failed" in caplog.text, "the failure itself is logged"
    assert TOKEN_MARK not in caplog.text


def test_the_filter_drops_query_lines_and_masks_configured_secrets() -> None:
    settings = Settings(auth_password="hunter2", auth_token="tok-123")
    quiet = QuietFilter(secrets_of(settings))
    query = logging.LogRecord("peewee", logging.DEBUG, "", 0, "(%r, %r)", ("INSERT", []), None)
    assert not quiet.filter(query)
    words = ("hunter2", "tok-123")
    said = logging.LogRecord("x", logging.ERROR, "", 0, "login %s / %s", words, None)
    assert quiet.filter(said) and said.getMessage() == f"login {MASK} / {MASK}"
    try:
        raise ValueError("bad password hunter2")
    except ValueError as exc:
        failed = logging.LogRecord("x", logging.ERROR, "", 0, "failed", (), (ValueError, exc, None))
    assert quiet.filter(failed) and failed.exc_info is None
    assert "withheld" in failed.getMessage()
