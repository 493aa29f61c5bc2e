"""The load: example events, wrk runs (bench/receive.lua), POSTs from threads, slow clients."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .base import BENCH, EXAMPLE_EVENT, BenchError

WRK_SCRIPT = BENCH / "receive.lua"
EVENT_ID_PLACEHOLDER = "@EVENT_ID@"
#: Length of the ids receive.lua puts in place of the placeholder ("<10-char tag>-<t>-<8 digits>").
WRK_ID_LENGTH = 21


def example_event() -> dict[str, Any]:
    """The example event as a fresh dict."""
    document: dict[str, Any] = json.loads(EXAMPLE_EVENT.read_text())
    return document


def event_template(event: Mapping[str, Any], pad_to: int | None = None) -> str:
    """The event's JSON with ``@EVENT_ID@`` in place of its id (for wrk's script).

    With ``pad_to``, a ``bench.padding`` key/value makes the body exactly ``pad_to`` bytes once
    receive.lua has put an id of :data:`WRK_ID_LENGTH` characters in place of the placeholder.
    """
    document = json.loads(json.dumps(event))
    document["eventID"] = EVENT_ID_PLACEHOLDER
    if pad_to is not None:
        padding = {"destinationTable": "TransactionKeyValue", "key": "bench.padding", "value": ""}
        document["data"].append(padding)
        base = len(json.dumps(document).encode()) - len(EVENT_ID_PLACEHOLDER) + WRK_ID_LENGTH
        if pad_to < base:
            raise BenchError(f"a body of {pad_to} bytes cannot hold the event ({base} bytes)")
        padding["value"] = "x" * (pad_to - base)
    return json.dumps(document)


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    statuses: dict[str, int]
    task_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Answers with a 2xx status."""
        return sum(count for status, count in self.statuses.items() if status.startswith("2"))

    @property
    def errors(self) -> int:
        """Socket errors plus answers that are not 2xx."""
        return self.socket_errors + self.requests - self.ok


def run_wrk(
    url: str,
    template: str,
    connections: int,
    seconds: float,
    work_dir: Path,
    threads: int = 2,
    collect_ids: bool = True,
    timeout_s: int = 10,
) -> WrkResult:
    """POST ``template`` to ``url``/receive, a fresh event id per request, for ``seconds``."""
    body_file = work_dir / f"body-{uuid.uuid4().hex}.json"
    body_file.write_text(template)
    ids_prefix = work_dir / f"ids-{uuid.uuid4().hex}" if collect_ids else None
    run_tag = uuid.uuid4().hex[:10]
    if threads > 9:
        raise BenchError("receive.lua's ids have the fixed length of 1-digit thread numbers")
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(WRK_SCRIPT),
        f"{url}/receive",
        "--",
        str(body_file),
        run_tag,
        str(ids_prefix) if ids_prefix else "",
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + timeout_s + 60
    )
    body_file.unlink(missing_ok=True)
    lines = [line for line in finished.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if finished.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({finished.returncode}): {finished.stdout}{finished.stderr}")
    data = json.loads(lines[-1][len("BENCH_JSON ") :])
    ids: list[str] = []
    if ids_prefix is not None:
        for path in sorted(work_dir.glob(ids_prefix.name + ".*")):
            ids.extend(line for line in path.read_text().splitlines() if line)
            path.unlink()
    seconds_run = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        seconds=seconds_run,
        rps=data["requests"] / seconds_run if seconds_run else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        socket_errors=sum(data["errors"].values()),
        statuses={str(key): int(value) for key, value in data["statuses"].items()},
        task_ids=ids,
    )


def post_bodies(
    url: str, template: str, count: int, concurrency: int
) -> tuple[dict[str, int], list[str]]:
    """POST ``count`` bodies from ``template`` (fresh ids of :data:`WRK_ID_LENGTH` characters)
    to ``url``/receive, ``concurrency`` at a time: the count of each HTTP status (or error),
    and the task id of every 2xx answer."""
    tag = uuid.uuid4().hex[:10]
    head, _, tail = template.partition(EVENT_ID_PLACEHOLDER)

    def post(number: int) -> tuple[str, str | None]:
        event_id = f"{tag}-0-{number:08d}"
        body = (head + event_id + tail).encode()
        try:
            answer = requests.post(
                f"{url}/receive",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=600,
            )
        except requests.RequestException as exc:
            return type(exc).__name__, None
        task = None
        if answer.ok:
            with contextlib.suppress(ValueError, AttributeError):
                task = str(answer.json()["taskID"])
        return str(answer.status_code), task

    counts: dict[str, int] = {}
    ids: list[str] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for status, task in pool.map(post, range(count)):
            counts[status] = counts.get(status, 0) + 1
            if task is not None:
                ids.append(task)
    return counts, ids


def post_many(url: str, template: str, count: int, concurrency: int) -> dict[str, int]:
    """:func:`post_bodies`' counts of each HTTP status."""
    return post_bodies(url, template, count, concurrency)[0]


class SlowClients:
    """Idle connections and slowloris ones (an unfinished header, a byte every 0.5 s)."""

    def __init__(self, port: int, idle: int = 100, slowloris: int = 100) -> None:
        self.sockets: list[socket.socket] = []
        self.slow: list[socket.socket] = []
        for number in range(idle + slowloris):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.sockets.append(connection)
            if number >= idle:
                connection.sendall(b"POST /receive HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                self.slow.append(connection)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        while not self._stop.wait(0.5):
            for connection in self.slow:
                with contextlib.suppress(OSError):
                    connection.send(b"a")

    def close(self) -> None:
        """Stop dripping and close every connection."""
        self._stop.set()
        self._thread.join()
        for connection in self.sockets:
            connection.close()


class HealthProbe:
    """``GET /health`` once a second: how long each took (None: no answer within 5 s)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seconds: list[float | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            started = time.monotonic()
            try:
                requests.get(self.url + "/health", timeout=5).raise_for_status()
                self.seconds.append(time.monotonic() - started)
            except requests.RequestException:
                self.seconds.append(None)

    def stop(self) -> list[float | None]:
        """End the probe; the timings."""
        self._stop.set()
        self._thread.join()
        return self.seconds
