"""Prove a running stack end to end: upload -> OK, event delivered to a sink, cart download.

Run with the dev venv (it has pacifica-uploader and pacifica-downloader)::

    .venv/bin/python tests/integration/stack/smoke.py [path/to/stack.json]

Steps, each bounded in time: subscribe (``POST /eventmatch`` as the stack's user) with a
jsonpath that matches only this run's upload; upload a two-file bundle with pacifica-uploader
and poll ingest until OK; wait for Notifications to POST the event to a local sink that
answers 200; download the event's files through Cartd with pacifica-downloader and compare
their sha1 with the originals; delete the subscription. Prints one line per step with its time.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from pacifica.downloader import Downloader
from pacifica.uploader import Uploader
from pacifica.uploader.bundler import Bundler
from pacifica.uploader.metadata import MetaData, MetaObj

DEFAULT_SUMMARY = (
    Path(os.environ.get("DISPATCHER_PACIFICA_STACK_ROOT", "/tmp/dispatcher-pacifica-stack"))
    / "stack.json"
)
INGEST_TIMEOUT_S = 120.0
EVENT_TIMEOUT_S = 60.0
FILES = {
    "inputs/observations.csv": "t,value\n0,1.5\n1,2.5\n",
    "models/model.py": "def advance(x):\n    return x + 1\n",
}


class SmokeFailed(Exception):
    """A step of the smoke check did not give the expected result."""


class Sink(BaseHTTPRequestHandler):
    """Answers 200 to every POST and hands the body to the test."""

    received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    def do_POST(self) -> None:
        """Store the delivery and answer 200 (a non-2xx would disable the subscription)."""
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.put((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the output to the step lines."""


def step(name: str, started: float) -> None:
    """Print one step and its time."""
    print(f"  {name:<58} {time.monotonic() - started:6.2f} s", flush=True)


def subscribe(info: dict[str, Any], marker: str, target_url: str) -> str:
    """Create a subscription matching only this run's upload; return its uuid."""
    jsonpath = (
        '$[?(@["eventType"] = "org.pacifica.metadata.ingest")]["data"][*]'
        '[?((@["destinationTable"] = "TransactionKeyValue") and '
        f'(@["value"] = "{marker}"))]'
    )
    body = {"name": f"smoke-{marker}", "jsonpath": jsonpath, "target_url": target_url}
    headers = {info["notifications_user_header"]: info["network_id"]}
    resp = requests.post(
        info["notifications_url"] + "/eventmatch", json=body, headers=headers, timeout=30
    )
    if resp.status_code != 200:
        raise SmokeFailed(f"POST /eventmatch: {resp.status_code} {resp.text[:300]}")
    return str(resp.json()["uuid"])


def unsubscribe(info: dict[str, Any], sub_uuid: str) -> None:
    """Delete the subscription (soft delete on the server)."""
    headers = {info["notifications_user_header"]: info["network_id"]}
    requests.delete(
        f"{info['notifications_url']}/eventmatch/{sub_uuid}", headers=headers, timeout=30
    )


def upload(info: dict[str, Any], source: Path, marker: str) -> int:
    """Bundle every file under source as data/<relpath>, upload, wait for OK; return job id."""
    metadata = MetaData(
        [
            MetaObj(destinationTable="Transactions.submitter", value=info["submitter"]),
            MetaObj(destinationTable="Transactions.project", value=info["project"]),
            MetaObj(destinationTable="Transactions.instrument", value=info["instrument"]),
            MetaObj(destinationTable="TransactionKeyValue", key="smoke.run", value=marker),
        ]
    )
    paths = sorted(p for p in source.rglob("*") if p.is_file())
    handles = [path.open("rb") for path in paths]
    try:
        file_data = [
            {
                "fileobj": handle,
                "name": "data/" + path.relative_to(source).as_posix(),
                "size": path.stat().st_size,
                "mtime": path.stat().st_mtime,
            }
            for path, handle in zip(paths, handles, strict=True)
        ]
        bundle = source.parent / "bundle.tar"
        with bundle.open("wb") as out:
            Bundler(metadata, file_data).stream(out)
    finally:
        for handle in handles:
            handle.close()
    uploader = Uploader(upload_url=info["upload_url"], status_url=info["upload_status_url"])
    with bundle.open("rb") as stream:
        job_id = int(uploader.upload(stream, content_length=bundle.stat().st_size))
    deadline = time.monotonic() + INGEST_TIMEOUT_S
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = uploader.getstate(job_id)
        if state.get("state") == "FAILED":
            raise SmokeFailed(f"ingest job {job_id} FAILED: {json.dumps(state)}")
        if (
            state.get("state") == "OK"
            and state.get("task") == "ingest metadata"
            and int(float(state.get("task_percent", 0))) == 100
        ):
            return job_id
        time.sleep(0.3)
    raise SmokeFailed(f"ingest job {job_id} not OK after {INGEST_TIMEOUT_S} s: {state}")


def wait_event(job_id: int) -> dict[str, Any]:
    """The event for job_id as the sink received it."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            headers, body = Sink.received.get(timeout=0.5)
        except queue.Empty:
            continue
        event: dict[str, Any] = json.loads(body)
        ids = [
            d.get("value")
            for d in event.get("data", [])
            if d.get("destinationTable") == "Transactions._id"
        ]
        if ids == [job_id]:
            if not headers.get("Content-Type", "").startswith("application/json"):
                raise SmokeFailed(f"event delivered with headers {headers}")
            return event
    raise SmokeFailed(f"no event for transaction {job_id} within {EVENT_TIMEOUT_S} s")


def check_download(info: dict[str, Any], event: dict[str, Any], dest: Path) -> None:
    """Download the event's files through Cartd and compare sha1 with the originals."""
    Downloader(cart_api_url=info["cartd_url"]).cloudevent(str(dest), event, timeout=120)
    for rel, text in FILES.items():
        got = dest / "data" / rel
        if not got.is_file():
            raise SmokeFailed(f"cart lacks {rel}; has {sorted(map(str, dest.rglob('*')))}")
        want = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 (Pacifica's hash)
        if hashlib.sha1(got.read_bytes()).hexdigest() != want:  # noqa: S324
            raise SmokeFailed(f"sha1 of downloaded {rel} differs")


def main() -> int:
    """Run the steps; exit 0 when all pass."""
    summary_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SUMMARY
    info: dict[str, Any] = json.loads(summary_path.read_text())
    marker = uuid.uuid4().hex
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{server.server_address[1]}/receive"
    total = time.monotonic()
    sub_uuid = None
    try:
        with tempfile.TemporaryDirectory(prefix="pacstack-smoke-") as tmp:
            work = Path(tmp)
            started = time.monotonic()
            sub_uuid = subscribe(info, marker, target)
            step(f"subscribed as {info['network_id']} -> {target}", started)
            source = work / "upload"
            for rel, text in FILES.items():
                (source / rel).parent.mkdir(parents=True, exist_ok=True)
                (source / rel).write_text(text)
            started = time.monotonic()
            job_id = upload(info, source, marker)
            step(f"upload reached OK (transaction {job_id})", started)
            started = time.monotonic()
            event = wait_event(job_id)
            step(f"event {event['eventID']} delivered to the sink", started)
            started = time.monotonic()
            check_download(info, event, work / "download")
            step("cart download matches the uploaded files (sha1)", started)
    except SmokeFailed as err:
        print(f"SMOKE FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        if sub_uuid:
            unsubscribe(info, sub_uuid)
        server.shutdown()
    step("smoke passed", total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
