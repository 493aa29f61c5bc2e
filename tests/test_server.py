"""The embedded HTTP server against slow, idle and malformed clients (the real server, loopback).

Each test starts ``python -m pacifica.dispatcher_proxymod --port P`` (SQLite and the embedded
broker in the test's folder, a free port) and talks to it over raw sockets. Timing bounds are
generous (the machine is shared); the point is that answers come at all while slow clients hold
connections, where the previous server (16 threads, one per connection) gave none.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from pacifica.dispatcher_proxymod.settings import Settings, environment_for

IDLE = 100
SLOWLORIS = 100
#: The service answers within this beside the slow clients (the issue's bound).
ANSWER_WITHIN = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """The web server process and where it listens."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def launch_server(settings: Settings, folder: Path, **env: str) -> Server:
    """The console script's web server on a free port, not waited for."""
    port = free_port()
    environment = environment_for(settings, os.environ)
    environment.update(env)
    log = folder / f"web-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pacifica.dispatcher_proxymod", "--port", str(port)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process, port, log)


def start_server(settings: Settings, folder: Path, poll_seconds: float = 0.2, **env: str) -> Server:
    """:func:`launch_server`, waited for until /health answers (asked every ``poll_seconds``)."""
    server = launch_server(settings, folder, **env)
    process = server.process
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, server.log_text()
        try:
            if requests.get(server.url + "/health", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            time.sleep(poll_seconds)
    raise AssertionError(f"the server did not answer within 60 s:\n{server.log_text()}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def settings_in(folder: Path) -> Settings:
    """SQLite and the embedded broker in ``folder``."""
    return Settings(
        database_url=f"sqlite:///{folder / 'tasks.sqlite3'}",
        state_dir=folder / "state",
        work_dir=folder / "state" / "work",
        transfer="local",
    )


@contextlib.contextmanager
def server_in(folder: Path, poll_seconds: float = 0.2, **env: str) -> Iterator[Server]:
    """A server with :func:`settings_in` ``folder``, stopped afterwards."""
    started = start_server(settings_in(folder), folder, poll_seconds, **env)
    try:
        yield started
    finally:
        stop_server(started)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that do not need a fresh one (short timeouts, small limits)."""
    with server_in(
        tmp_path_factory.mktemp("server"),
        DISPATCHER_MAX_BODY_BYTES="400000",
        DISPATCHER_HTTP_REQUEST_TIMEOUT="4",
        DISPATCHER_HTTP_IDLE_TIMEOUT="4",
        DISPATCHER_HTTP_MAX_HEADERS="50",
        DISPATCHER_HTTP_MAX_HEADER_BYTES="8192",
    ) as started:
        yield started


def event_body(example_event: dict[str, Any], pad: int = 0) -> bytes:
    event = dict(example_event, eventID=f"server-{uuid.uuid4()}")
    if pad:
        event["data"] = [
            *event["data"],
            {"destinationTable": "TransactionKeyValue", "key": "pad", "value": "x" * pad},
        ]
    return json.dumps(event).encode()


def exchange(port: int, raw: bytes, timeout: float = 30) -> tuple[int, dict[str, Any], str]:
    """Send ``raw`` on a new connection; the status, JSON body and head of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        # the server may answer (and close) before reading it all
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(raw)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head, f"no answer to {raw[:80]!r}"
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body), head.decode("latin-1")


class SlowClients:
    """Idle connections (nothing sent) and slowloris ones (a header line now and then)."""

    def __init__(self, port: int, idle: int, slow: int) -> None:
        self.port = port
        self.idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
        self.slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(slow)]
        for number, connection in enumerate(self.slow):
            connection.sendall(b"POST /receive HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n")
            connection.sendall(f"X-Slow-{number}: ".encode())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        while not self._stop.wait(0.5):
            for connection in self.slow:
                with contextlib.suppress(OSError):
                    connection.send(b"a")

    def still_open(self) -> int:
        """How many of them the server has not closed (a closed one reads EOF)."""
        count = 0
        for connection in self.idle + self.slow:
            connection.setblocking(False)
            try:
                count += connection.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                count += 1
            except OSError:
                pass
        return count

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.idle + self.slow:
            connection.close()


def timed(call: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def test_health_and_receive_answer_beside_100_idle_and_100_slowloris_connections(
    settings: Settings, tmp_path: Path, example_event: dict[str, Any]
) -> None:
    # the default timeouts (30 s): the slow clients stay connected for the whole test
    server = start_server(settings, tmp_path)
    slow = SlowClients(server.port, IDLE, SLOWLORIS)
    try:
        time.sleep(1)  # every connection accepted and dripping
        assert slow.still_open() == IDLE + SLOWLORIS
        health, receive = [], []
        for _ in range(5):
            seconds, answer = timed(lambda: requests.get(server.url + "/health", timeout=10))
            assert answer.status_code == 200
            health.append(seconds)
            seconds, answer = timed(
                lambda: requests.post(
                    server.url + "/receive",
                    data=event_body(example_event),
                    headers={"Content-Type": "application/json"},
                    timeout=10,
                )
            )
            assert answer.status_code == 202, answer.text
            receive.append(seconds)
        assert slow.still_open() == IDLE + SLOWLORIS, "the slow clients were there all along"
    finally:
        slow.close()
        stop_server(server)
    assert statistics.median(health) < ANSWER_WITHIN, health
    assert statistics.median(receive) < ANSWER_WITHIN, receive


def test_a_slow_large_body_does_not_block_another_large_body(
    server: Server, example_event: dict[str, Any]
) -> None:
    slow_body = event_body(example_event, pad=300_000)  # both over the large-body size
    fast_body = event_body(example_event, pad=300_000)
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.sendall(
            b"POST /receive HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(slow_body)}\r\n\r\n".encode()
            + slow_body[:1000]
        )
        seconds, answer = timed(
            lambda: requests.post(
                server.url + "/receive",
                data=fast_body,
                headers={"Content-Type": "application/json"},
                timeout=20,
            )
        )
        assert answer.status_code == 202, answer.text
        assert seconds < 10 * ANSWER_WITHIN
        slow.sendall(slow_body[1000:])
        assert b" 202 " in slow.recv(200)


def test_a_request_that_does_not_arrive_in_time_gets_408_and_idle_ones_are_closed(
    server: Server,
) -> None:
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as trickle,
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as idle,
    ):
        trickle.sendall(b"POST /receive HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                trickle.sendall(b"X-Drip: 1\r\n")
            except OSError:
                break
            time.sleep(0.3)
            trickle.setblocking(False)
            try:
                answer += trickle.recv(4096)
            except BlockingIOError:
                pass
            finally:
                trickle.setblocking(True)
            assert time.monotonic() - started < 30, "no 408 within 30 s"
        assert answer.startswith(b"HTTP/1.") and b" 408 " in answer.split(b"\r\n")[0]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["status"] == 408
        assert idle.recv(10) == b"", "an idle connection is closed after the idle timeout"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-N: 1\r\n" * 60 + b"\r\n", 431),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"POST /receive HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413),
    ],
    ids=["header-count", "header-bytes", "body-bytes"],
)
def test_limits_answer_json(server: Server, raw: bytes, status: int) -> None:
    answered, document, head = exchange(server.port, raw)
    assert answered == status
    assert document["status"] == status and "application/json" in head


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        (b"Content-Length: 5, 6\r\n\r\nhello!", 400),
        (b"Content-Length: -5\r\n\r\nhello", 400),
        (b"Content-Length: 0x10\r\n\r\n0123456789abcdef", 400),
        (b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n5;\x01=x\r\nhello\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (b"Transfer-Encoding: chunked\r\n\r\n100000\r\n" + b"x" * 0x100000 + b"\r\n", 413),
        (b"X-Bad Header: 1\r\n\r\n", 400),
    ],
    ids=[
        "same-length-twice",
        "conflicting-lengths",
        "length-list",
        "negative-length",
        "hex-length",
        "bad-chunk-size",
        "chunk-without-crlf",
        "bad-chunk-extension",
        "unknown-coding",
        "chunked-over-the-limit",
        "invalid-header-line",
    ],
)
def test_bad_framing_gets_a_json_4xx_and_the_server_goes_on(
    server: Server, raw: bytes, status: int
) -> None:
    head = b"POST /receive HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    answered, document, headers = exchange(server.port, head + raw)
    assert answered == status, document
    assert document["status"] == status and "application/json" in headers
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


def test_the_loop_waits_while_a_task_holds_the_output_lock() -> None:
    """A task thread that holds its connection's output lock with output waiting (as
    ``write_soon`` does between appending and sending, when its thread loses the GIL) must not
    make the server's loop spin: waitress's own ``writable()`` asked to write then, so every
    ``poll()`` returned at once and the loop could not send anyway."""
    from waitress import wasyncore
    from waitress.adjustments import Adjustments

    from pacifica.dispatcher_proxymod.server import GuardedChannel

    ours, theirs = socket.socketpair()
    connections: dict[int, Any] = {}
    server = SimpleNamespace(active_channels={})  # all a channel asks of its server here
    channel = GuardedChannel(server, ours, ("127.0.0.1", 0), Adjustments(), map=connections)
    channel.requests.append(object())  # a task runs
    channel.outbufs[-1].append(b"x")  # and has appended output it has not sent yet
    channel.total_outbufs_len = 1
    assert channel.writable(), "with the lock free the loop sends it"
    holding, done = threading.Event(), threading.Event()

    def task() -> None:
        with channel.outbuf_lock:
            holding.set()
            done.wait(timeout=30)

    thread = threading.Thread(target=task)
    thread.start()
    try:
        holding.wait(timeout=30)
        assert not channel.writable()
        started = time.monotonic()
        wasyncore.loop(timeout=0.2, map=connections, use_poll=True, count=5)
        # five passes that wait for an event (about 1 s), not five that return at once
        assert time.monotonic() - started >= 0.8
        # past the high watermark the task waits for the loop to drain it: asked as waitress asks
        channel.total_outbufs_len = channel.adj.outbuf_high_watermark + 1
        assert channel.writable()
        channel.total_outbufs_len = 1
    finally:
        done.set()
        thread.join(timeout=30)
    try:
        assert channel.writable()
        wasyncore.loop(timeout=5, map=connections, use_poll=True, count=1)
        theirs.settimeout(10)
        assert theirs.recv(16) == b"x", "once the lock is free the loop sends what waited"
    finally:
        channel.del_channel()
        ours.close()
        theirs.close()


def test_a_sigterm_right_after_the_first_answer_is_a_clean_stop(tmp_path: Path) -> None:
    """It answers only once CherryPy's engine has started: from the first answer on, SIGTERM
    stops it cleanly (exit 0, the whole log written), never with CherryPy's ``os._exit(70)``
    for a start that had not finished."""
    with server_in(tmp_path, poll_seconds=0.002) as started:
        started.process.send_signal(signal.SIGTERM)
        code = started.process.wait(timeout=60)
    log = started.log_text()
    assert code == 0, log
    assert "ENGINE Bus STARTED" in log and "ENGINE Bus EXITED" in log, log


def test_a_sigterm_while_it_starts_still_leaves_the_whole_log(tmp_path: Path) -> None:
    """SIGTERM as soon as the socket listens (the engine still starting): whether CherryPy ends
    the process at once (exit 70) or it had just started (0), its lines are written."""
    server = launch_server(settings_in(tmp_path), tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.process.poll() is None:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                break
            time.sleep(0.002)
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=60)
    finally:
        stop_server(server)
    log = server.log_text()
    assert code in (0, 70), log
    assert "waitress: 16 threads" in log and "ENGINE Bus STOPPED" in log, log
