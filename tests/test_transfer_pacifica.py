"""Tests of the Pacifica transfer.

The error classes (against closed ports and a small HTTP server of ours) always run; the bundle,
Ingest state and session helpers are tested in test_transfer_bundle, _ingest and _session. The
round trips run against the real Pacifica services of tests/integration/stack/pacifica_stack.py,
probed first (a stack.json alone proves nothing) and started in CI
(tests/pacifica_stack_finder.py); without it they skip, unless CI=true and
DISPATCHER_INTEGRATION=1, when they fail.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pacifica_stack_finder import find_stack
from transfer_files import make_upload, result_tree, sha1, write

from pacifica.dispatcher_proxymod.errors import ChecksumMismatch, TransferError
from pacifica.dispatcher_proxymod.events import Event, FileEntry, Upload
from pacifica.dispatcher_proxymod.settings import PacificaSettings
from pacifica.dispatcher_proxymod.transfer.pacifica import PacificaTransfer

EVENT = Event(specversion="0.1", id="metadata.ingest.1", source="test", type="test")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def entry(data: bytes, name: str = "a.csv", file_id: int | None = 1) -> FileEntry:
    return FileEntry(name, "inputs", "text/csv", "sha1", sha1(data), len(data), file_id, None, None)


def test_unreachable_cartd_is_transient(tmp_path: Path, closed_port: int) -> None:
    settings = PacificaSettings(download_url=f"http://127.0.0.1:{closed_port}")
    transfer = PacificaTransfer(settings, attempts=1)
    with pytest.raises(TransferError, match="unreachable") as caught:
        transfer.download(EVENT, make_upload(), [entry(b"x")], tmp_path)
    assert caught.value.transient is True


def test_unreachable_ingest_is_transient(tmp_path: Path, closed_port: int) -> None:
    write(tmp_path / "results" / "a.txt", b"a")
    base = f"http://127.0.0.1:{closed_port}"
    settings = PacificaSettings(upload_url=f"{base}/upload", upload_status_url=f"{base}/get_state")
    transfer = PacificaTransfer(settings, bundle_dir=tmp_path / "bundles", attempts=1)
    with pytest.raises(TransferError, match="unreachable") as caught:
        transfer.upload(make_upload(), tmp_path / "results", {"Transactions._id": "1"})
    assert caught.value.transient is True
    assert list((tmp_path / "bundles").iterdir()) == []  # the temporary bundle is gone


def test_retries_transient_failures_then_gives_up(tmp_path: Path, closed_port: int) -> None:
    pauses: list[float] = []
    settings = PacificaSettings(download_url=f"http://127.0.0.1:{closed_port}")
    transfer = PacificaTransfer(settings, attempts=3, backoff_seconds=0.5, sleep=pauses.append)
    with pytest.raises(TransferError):
        transfer.download(EVENT, make_upload(), [entry(b"x")], tmp_path)
    assert pauses == [0.5, 1.0]


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status the server was told to give."""

    def _answer(self) -> None:
        status: int = self.server.status  # type: ignore[attr-defined]
        self.server.requests += 1  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"message": f"told to answer {status}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def status_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    server.status = 500  # type: ignore[attr-defined]
    server.requests = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(("status", "transient"), [(503, True), (404, False), (403, False)])
def test_http_errors_are_classed_by_status(
    tmp_path: Path,
    status_server: http.server.ThreadingHTTPServer,
    status: int,
    transient: bool,
) -> None:
    status_server.status = status  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{status_server.server_address[1]}"
    transfer = PacificaTransfer(PacificaSettings(download_url=url), attempts=1)
    with pytest.raises(TransferError, match=f"HTTP {status}.*told to answer {status}") as caught:
        transfer.download(EVENT, make_upload(), [entry(b"x")], tmp_path)
    assert caught.value.transient is transient


def test_missing_file_id_without_transaction_is_refused(tmp_path: Path) -> None:
    transfer = PacificaTransfer(PacificaSettings(), attempts=1)
    with pytest.raises(TransferError, match=r"no Files\._id") as caught:
        transfer.download(EVENT, make_upload(None), [entry(b"x", file_id=None)], tmp_path)
    assert caught.value.transient is False


# ------------------------------------------------------------------ the real services


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return find_stack()


@pytest.fixture(scope="module")
def stack_settings(stack: dict[str, Any]) -> PacificaSettings:
    return PacificaSettings(
        upload_url=stack["upload_url"],
        upload_status_url=stack["upload_status_url"],
        upload_policy_url=stack["upload_policy_url"],
        upload_validation_url=stack["upload_validation_url"],
        download_url=stack["cartd_url"],
        download_policy_url=stack["download_policy_url"],
        ingest_timeout_seconds=180,
        cart_timeout_seconds=45,  # a cart the archive interface breaks stays "staging"
        request_timeout_seconds=60,
    )


@pytest.fixture(scope="module")
def stack_upload(stack: dict[str, Any]) -> Upload:
    return make_upload(None, stack["submitter"], stack["project"], stack["instrument"])


@pytest.fixture(scope="module")
def round_trip(
    stack: dict[str, Any],
    stack_settings: PacificaSettings,
    stack_upload: Upload,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """An input transaction, then a result transaction linked to it, both through Ingest."""
    base = tmp_path_factory.mktemp("round_trip")
    transfer = PacificaTransfer(stack_settings, bundle_dir=base / "bundles")
    write(base / "inputs" / "inputs" / "observations.csv", b"time,value\n0,1.5\n")
    first = transfer.upload(stack_upload, base / "inputs", {"proxymod.task": "integration"})
    assert first.transaction_id is not None
    files = result_tree(base / "results", base / "outside")
    key_values = {"Transactions._id": str(first.transaction_id), "proxymod.result": "done"}
    second = transfer.upload(stack_upload, base / "results", key_values)
    assert second.transaction_id is not None
    info = requests.get(
        f"{stack['metadata_url']}/transactioninfo/by_id/{second.transaction_id}", timeout=30
    ).json()
    return {"input": first, "result": second, "files": files, "info": info, "base": base}


def _entries(info: dict[str, Any], with_ids: bool = True) -> list[FileEntry]:
    """FileEntries for a transaction's files, as an event would carry them."""
    return [
        FileEntry(
            name=described["name"],
            subdir=described["subdir"],
            mimetype=described.get("mimetype") or "application/octet-stream",
            hashtype=described["hashtype"],
            hashsum=described["hashsum"],
            size=described["size"],
            file_id=int(file_id) if with_ids else None,
            mtime=None,
            ctime=None,
        )
        for file_id, described in info["files"].items()
    ]


@pytest.mark.integration
def test_upload_creates_a_linked_transaction(round_trip: dict[str, Any]) -> None:
    result = round_trip["result"]
    assert result.transaction_id > round_trip["input"].transaction_id
    assert result.job_id == str(result.transaction_id)
    info = round_trip["info"]
    assert info["key_values"]["Transactions._id"] == str(round_trip["input"].transaction_id)
    assert info["key_values"]["proxymod.result"] == "done"
    described = {
        (f["subdir"] + "/" if f["subdir"] else "") + f["name"]: f for f in info["files"].values()
    }
    assert set(described) == set(round_trip["files"])  # the planted symlinks were not shipped
    for relative, data in round_trip["files"].items():
        assert described[relative]["hashsum"] == sha1(data)
        assert described[relative]["size"] == len(data)


@pytest.mark.integration
def test_download_brings_back_the_same_bytes(
    round_trip: dict[str, Any], stack_settings: PacificaSettings, stack_upload: Upload
) -> None:
    entries = _entries(round_trip["info"])
    dest = round_trip["base"] / "download"
    got = PacificaTransfer(stack_settings).download(EVENT, stack_upload, entries, dest)
    assert set(got) == set(entries)
    for path in got.values():
        relative = path.relative_to(dest.resolve()).as_posix()
        assert path.read_bytes() == round_trip["files"][relative]


@pytest.mark.integration
def test_download_of_some_files_only(
    round_trip: dict[str, Any], stack_settings: PacificaSettings, stack_upload: Upload
) -> None:
    wanted = [e for e in _entries(round_trip["info"]) if e.name == "output1.csv"]
    dest = round_trip["base"] / "some"
    got = PacificaTransfer(stack_settings).download(EVENT, stack_upload, wanted, dest)
    assert [p.relative_to(dest.resolve()).as_posix() for p in got.values()] == [
        "outputs/model_1_outputs/output1.csv"
    ]
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["output1.csv"]


@pytest.mark.integration
def test_download_without_file_ids_looks_them_up(
    round_trip: dict[str, Any], stack_settings: PacificaSettings, stack_upload: Upload
) -> None:
    upload = make_upload(
        round_trip["result"].transaction_id,
        stack_upload.submitter,
        stack_upload.project,
        stack_upload.instrument,
    )
    entries = _entries(round_trip["info"], with_ids=False)
    dest = round_trip["base"] / "no_ids"
    got = PacificaTransfer(stack_settings).download(EVENT, upload, entries, dest)
    for path in got.values():
        relative = path.relative_to(dest.resolve()).as_posix()
        assert path.read_bytes() == round_trip["files"][relative]


@pytest.mark.integration
def test_download_detects_a_checksum_mismatch(
    round_trip: dict[str, Any], stack_settings: PacificaSettings, stack_upload: Upload
) -> None:
    good = next(e for e in _entries(round_trip["info"]) if e.name == "config_1.ini")
    bad = FileEntry(
        good.name, good.subdir, good.mimetype, "sha1", sha1(b"other"), good.size,
        good.file_id, None, None,
    )  # fmt: skip
    dest = round_trip["base"] / "mismatch"
    with pytest.raises(ChecksumMismatch) as caught:
        PacificaTransfer(stack_settings, attempts=1).download(EVENT, stack_upload, [bad], dest)
    assert caught.value.expected == bad.hashsum
    assert caught.value.transient is False
    assert "config_1.ini" in str(caught.value)
    assert [p for p in dest.rglob("*") if p.is_file()] == []


@pytest.mark.integration
def test_unknown_file_id_is_reported(
    stack_settings: PacificaSettings, stack_upload: Upload, tmp_path: Path
) -> None:
    ghost = entry(b"never uploaded", file_id=987_654_321)
    started = time.monotonic()
    with pytest.raises(TransferError) as caught:
        PacificaTransfer(stack_settings, attempts=1).download(
            EVENT, stack_upload, [ghost], tmp_path
        )
    assert "Cartd" in str(caught.value)
    assert time.monotonic() - started < stack_settings.cart_timeout_seconds


@pytest.mark.integration
def test_policy_refusal_reports_ingest_message(
    stack: dict[str, Any], stack_settings: PacificaSettings, tmp_path: Path
) -> None:
    write(tmp_path / "results" / "a.txt", b"a")
    outsider = make_upload(None, stack["outsider_id"], stack["project"], stack["instrument"])
    transfer = PacificaTransfer(stack_settings, bundle_dir=tmp_path / "bundles")
    with pytest.raises(TransferError, match=r"Ingest job [0-9]+ failed") as caught:
        transfer.upload(outsider, tmp_path / "results", {"Transactions._id": "1"})
    assert caught.value.transient is False
    assert "Precondition Failed" in str(caught.value)  # Policy's own reason, via Ingest
    assert "Traceback" not in str(caught.value)
