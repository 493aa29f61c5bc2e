"""Property-based fuzz of the HTTP layer over raw sockets, against the real server.

Hypothesis builds requests byte by byte: methods, paths, header names and values,
``Content-Length`` and ``Transfer-Encoding`` framing (right, wrong, repeated, chunked with
broken sizes or CRLFs), and bodies (random bytes or mutated events). Each goes to the service
(``python -m pacifica.dispatcher_proxymod``) on its own connection, which the client then
half-closes, so no request can wait forever for more bytes. Properties: an answer, when there
is one, is valid HTTP with a status below 500 (501 only for a transfer coding we do not
implement), its body is JSON, and the service keeps answering ``/health``. Bounded: a fixed
number of examples, each read within a timeout.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server import Server, server_in

EXAMPLE_EVENT = json.loads((Path(__file__).parents[1] / "examples" / "event.json").read_text())
MAX_BODY = 65536
#: The status codes the fuzz saw ("none": the server closed without an answer).
SEEN: Counter[str] = Counter()
TOKEN = "fuzz-token"

METHODS = st.one_of(
    st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]),
    st.text(alphabet=st.characters(codec="ascii"), min_size=0, max_size=12),
)
PATHS = st.one_of(
    st.sampled_from(
        ["/", "/receive", "/health", "/openapi.json", "/status/x", "/get/", "/ui/", "*"]
    ),
    st.builds(lambda p: "/" + p, st.text(max_size=40)),
    st.sampled_from(["/receive?x=1", "/%00", "/../etc/passwd", "/receive/..%2f..", "//"]),
)
HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "Content-Type",
            "Content-Length",
            "Transfer-Encoding",
            "Authorization",
            "Expect",
            "Connection",
            "ce-id",
            "ce-specversion",
            "Host",
        ]
    ),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=20),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/cloudevents+json",
            "chunked",
            "gzip, chunked",
            "100-continue",
            "Basic \u00e9\u00ff",
            "Basic " + "A" * 30,
            f"Bearer {TOKEN}",
            "-1",
            "1, 2",
            "",
        ]
    ),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=60),
)
BODIES = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda n: json.dumps({**EXAMPLE_EVENT, "eventID": f"fuzz-{n}"}).encode(), st.uuids()),
    st.builds(
        lambda event, key, value: json.dumps({**event, key: value}).encode(),
        st.just(EXAMPLE_EVENT),
        st.sampled_from(["eventID", "source", "data", "eventType", "cloudEventsVersion", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner),
            max_leaves=10,
        ),
    ),
)


@st.composite
def framings(draw: st.DrawFn, body: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and payload that frame ``body`` rightly, wrongly or not at all."""
    kind = draw(st.sampled_from(["length", "wrong-length", "two-lengths", "chunked", "none"]))
    if kind == "length":
        return [("Content-Length", str(len(body)))], body
    if kind == "wrong-length":
        return [("Content-Length", str(draw(st.integers(0, 3 * len(body) + 10))))], body
    if kind == "two-lengths":
        lengths = draw(st.lists(st.integers(0, len(body) + 5), min_size=2, max_size=3))
        return [("Content-Length", str(n)) for n in lengths], body
    if kind == "chunked":
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        payload = b""
        for piece in pieces:
            size = draw(st.sampled_from([f"{len(piece):x}", f"{len(piece) + 1:x}", "zz", ""]))
            crlf = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]))
            payload += size.encode() + b"\r\n" + piece + crlf
        payload += draw(st.sampled_from([b"0\r\n\r\n", b"0\r\n", b""]))
        return [("Transfer-Encoding", "chunked")], payload
    return [], body


VALID_METHODS = st.sampled_from(["GET", "POST", "POST", "POST", "HEAD", "PUT", "OPTIONS"])
VALID_PATHS = st.sampled_from(["/receive", "/receive", "/", "/health", "/status/x", "/get/"])
TOKEN_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
#: Which part of a request is corrupted (the rest is well formed, so it reaches the app).
PARTS = ("nothing", "nothing", "nothing", "method", "path", "version", "headers", "framing")


@st.composite
def requests_bytes(draw: st.DrawFn) -> bytes:
    """One raw HTTP request, well formed except (perhaps) in one part."""
    broken = draw(st.sampled_from(PARTS))
    method = draw(METHODS if broken == "method" else VALID_METHODS)
    path = draw(PATHS if broken == "path" else VALID_PATHS)
    version = (
        draw(st.sampled_from(["HTTP/1.0", "HTTP/2", "HTTP/x", "http/1.1", ""]))
        if broken == "version"
        else "HTTP/1.1"
    )
    headers = [("Host", "127.0.0.1")]
    if draw(st.integers(0, 3)):
        headers.append(("Authorization", f"Bearer {TOKEN}"))
    if draw(st.integers(0, 4)):
        kind = draw(st.sampled_from(["application/json", "application/cloudevents+json"]))
        headers.append(("Content-Type", kind))
    names = HEADER_NAMES if broken == "headers" else TOKEN_NAMES
    headers += draw(st.lists(st.tuples(names, HEADER_VALUES), max_size=4))
    body = draw(BODIES)
    if broken == "nothing" and draw(st.booleans()):  # a delivery as Notifications sends one
        method, path = "POST", "/receive"
        body = json.dumps({**EXAMPLE_EVENT, "eventID": f"fuzz-{draw(st.uuids())}"}).encode()
    if broken == "framing":
        framing, payload = draw(framings(body))
    else:
        framing, payload = [("Content-Length", str(len(body)))], body
    headers += framing
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return head.encode(encoding, errors="replace") + b"\r\n" + payload


def send(port: int, raw: bytes) -> bytes:
    """Send ``raw``, half-close, read the whole answer (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        with contextlib.suppress(OSError):  # the server may answer and close first
            connection.sendall(raw)
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                answer += chunk
    return answer


def check_answers(raw: bytes, answer: bytes) -> None:
    """Every answer on the connection: valid status line, below 500, a JSON body."""
    rest = answer
    if not rest:
        SEEN["none"] += 1
    while rest:
        head, separator, rest = rest.partition(b"\r\n\r\n")
        assert separator, f"an unterminated answer head {head[:200]!r} to {raw[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        version, status_text, *_ = lines[0].split(" ", 2)
        assert version in ("HTTP/1.0", "HTTP/1.1"), lines[0]
        status = int(status_text)
        SEEN[status_text] += 1
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        fields = {key.lower(): value for key, value in fields.items()}
        transfer_coding = b"transfer-encoding:" in raw.lower()
        assert status < 500 or (status == 501 and transfer_coding), (status, raw[:300])
        length = int(fields.get("content-length", "0"))
        body, rest = rest[:length], rest[length:]
        target = raw.split(b"\r\n", 1)[0].split(b" ")
        ui_page = len(target) > 1 and target[1].startswith(b"/ui")
        if body and not raw.upper().startswith(b"HEAD ") and not ui_page:  # the UI is HTML
            assert fields.get("content-type", "").startswith("application/json"), fields
            json.loads(body)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with server_in(
        tmp_path_factory.mktemp("fuzz"),
        DISPATCHER_MAX_BODY_BYTES=str(MAX_BODY),
        DISPATCHER_HTTP_REQUEST_TIMEOUT="10",
        DISPATCHER_AUTH="bearer",
        DISPATCHER_AUTH_TOKEN=TOKEN,
    ) as server:
        yield server


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=requests_bytes())
def test_any_request_gets_a_json_answer_below_500_and_the_service_goes_on(
    fuzz_server: Server, raw: bytes
) -> None:
    check_answers(raw, send(fuzz_server.port, raw))
    assert fuzz_server.process.poll() is None, "the server is still running"
    assert requests.get(fuzz_server.url + "/health", timeout=20).status_code == 200


def test_the_fuzz_reached_the_application_and_the_server_logged_no_traceback(
    fuzz_server: Server,
) -> Any:
    """Most requests were answered, by the server and by the application (not only refused
    at the door); none crashed inside the server (that leaves a traceback, even if answered)."""
    answered = sum(count for status, count in SEEN.items() if status != "none")
    assert answered > SEEN["none"], SEEN
    assert {"202", "400", "401"} <= set(SEEN) and len(SEEN) >= 5, SEEN
    print(f"statuses seen: {dict(sorted(SEEN.items()))}")
    assert "Traceback" not in fuzz_server.log_text()
