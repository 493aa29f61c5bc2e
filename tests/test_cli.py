"""The console script: ``process`` on one event, ``standalone`` over HTTP, argument handling."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import EXAMPLE_DATA, EXAMPLE_EVENT, edited_event
from expected import expected_outputs

from pacifica.dispatcher_proxymod.cli import build_parser

COMMAND = [sys.executable, "-m", "pacifica.dispatcher_proxymod"]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DISPATCHER_", "DATABASE_URL", "BROKER_URL", "BACKEND_URL"))
    }
    env["DISPATCHER_STATE_DIR"] = str(tmp_path / "state")
    return env


def _process(
    tmp_path: Path, event: Path, data: Path = EXAMPLE_DATA
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *COMMAND,
            "process",
            str(event),
            "--data-dir",
            str(data),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


def _write_event(tmp_path: Path, changes: dict[str, str], event_id: str = "x") -> Path:
    document = json.loads(EXAMPLE_EVENT.read_text())
    document["eventID"] = event_id
    for entry in document["data"]:
        if entry.get("key") in changes:
            entry["value"] = changes[entry["key"]]
    path = tmp_path / f"{event_id}.json"
    path.write_text(json.dumps(document))
    return path


def test_process_writes_the_result_tree(tmp_path: Path) -> None:
    done = _process(tmp_path, EXAMPLE_EVENT)
    assert done.returncode == 0, done.stderr
    result = Path(done.stdout.strip().splitlines()[-1])
    assert result.is_dir() and result.is_relative_to(tmp_path / "out")
    for name, content in expected_outputs(EXAMPLE_DATA / "inputs").items():
        assert (result / "outputs" / name).read_bytes() == content, name
    assert sorted(p.name for p in result.glob("config_*.ini")) == [
        "config_1.ini",
        "config_2.ini",
        "config_3.ini",
    ]
    assert (result / "stdout.log").stat().st_size > 0
    assert (result / "stderr.log").exists()
    manifest = json.loads((result / "manifest.json").read_text())
    assert [run["outcome"] for run in manifest["runs"]] == ["ok", "ok", "ok"]
    assert {m["path"] for m in manifest["models"]} == {
        "models/loose_coupling.py",
        "models/tight_coupling.py",
        "models/tight_coupling_twoway.py",
    }
    assert all(
        entry["hashtype"] == "sha1" and len(entry["hashsum"]) == 40
        for entry in manifest["inputs"] + manifest["models"]
    )


def test_process_fails_with_the_reason_on_stderr(tmp_path: Path) -> None:
    event = _write_event(tmp_path, {"proxymod.config_1.PROJECT.failure": "1"})
    done = _process(tmp_path, event)
    assert done.returncode != 0
    assert "You raised an error on purpose" in done.stderr
    assert "loose_coupling" in done.stderr


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"proxymod.config_1.OUTPUTS.out_dir": "/etc"}, "out_dir"),
        ({"proxymod.config_2.INPUTS.in_dir": "../../.."}, "in_dir"),
        ({"proxymod.config_1.PROJECT.runtime": "__import__('os').system('id')"}, "runtime"),
        ({"proxymod.config_1.OUTPUTS.out_dir": "out\n[PROJECT]\nruntime = 9"}, "out_dir"),
        ({"proxymod.configs_count": "100000"}, "configs_count"),
    ],
)
def test_process_refuses_hostile_configs(
    tmp_path: Path, changes: dict[str, str], expected: str
) -> None:
    done = _process(tmp_path, _write_event(tmp_path, changes))
    assert done.returncode != 0
    assert expected in done.stderr
    # nothing ran: the only thing written is the rejection's report tree
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    reports = {p.parent for p in written if p.name == "report.md"}
    assert len(reports) == 1
    allowed = {"report.md", "manifest.json", "ro-crate-metadata.json"}
    assert all(
        (p.parent in reports and p.name in allowed) or p.name.endswith(".delivery.json")
        for p in written
    )
    assert "rejected" in (reports.pop() / "report.md").read_text()


def test_process_refuses_traversal_in_file_entries(tmp_path: Path) -> None:
    document = json.loads(EXAMPLE_EVENT.read_text())
    for entry in document["data"]:
        if entry.get("name") == "loose_coupling.py":
            entry["subdir"] = "models/../../../tmp"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(document))
    done = _process(tmp_path, event)
    assert done.returncode != 0 and ".." in done.stderr


def test_process_reports_unreadable_and_invalid_events(tmp_path: Path) -> None:
    missing = _process(tmp_path, tmp_path / "nope.json")
    assert missing.returncode != 0 and "cannot read" in missing.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2")
    invalid = _process(tmp_path, garbage)
    assert invalid.returncode != 0 and "not a CloudEvent" in invalid.stderr
    orm = json.loads(EXAMPLE_EVENT.read_text())
    orm["eventType"] = "org.pacifica.metadata.orm"
    other = tmp_path / "orm.json"
    other.write_text(json.dumps(orm))
    unmatched = _process(tmp_path, other)
    assert unmatched.returncode != 0 and "org.pacifica.metadata.orm" in unmatched.stderr


def test_worker_options_go_to_celery() -> None:
    args = build_parser().parse_args(["standalone", "--data-dir", "d", "--output-dir", "o"])
    assert args.command == "standalone" and args.port == 8069 and args.host == "127.0.0.1"
    args = build_parser().parse_args(["--port", "9000", "--config", "cp.conf"])
    assert args.command is None and args.port == 9000 and args.cp_config == "cp.conf"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    out = tmp_path / "out"
    log = (tmp_path / "standalone.log").open("wb")
    proc = subprocess.Popen(
        [
            *COMMAND,
            "standalone",
            "--data-dir",
            str(EXAMPLE_DATA),
            "--output-dir",
            str(out),
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        env=_clean_env(tmp_path),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise AssertionError((tmp_path / "standalone.log").read_text()[-3000:])
        yield url, out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _wait(url: str, task_id: str) -> str:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status: str = requests.get(f"{url}/status/{task_id}", timeout=10).json()
        if status.split()[0] in ("200", "422", "500"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"{task_id} did not finish")


def test_standalone_end_to_end(standalone: tuple[str, Path], tmp_path: Path) -> None:
    url, out = standalone
    event: dict[str, Any] = json.loads(EXAMPLE_EVENT.read_text())
    answer = requests.post(f"{url}/receive", json=event, timeout=30)
    assert answer.status_code == 202
    task_id = answer.json()["taskID"]
    assert _wait(url, task_id) == "200 OK"
    record = requests.get(f"{url}/get/{task_id}", timeout=10).json()
    result = Path(record["result"]["location"])
    assert result.is_relative_to(out)
    for name, content in expected_outputs(EXAMPLE_DATA / "inputs").items():
        assert (result / "outputs" / name).read_bytes() == content
    duplicate = requests.post(f"{url}/receive", json=event, timeout=30)
    assert duplicate.status_code == 200 and duplicate.json()["taskID"] == task_id
    assert requests.post(f"{url}/receive", data=b"{oops", timeout=30).status_code == 400
    assert requests.post(f"{url}/receive", json={"a": 1}, timeout=30).status_code == 400
    hostile = edited_event(
        event, "hostile", values={"proxymod.config_3.OUTPUTS.out_dir": "../../../../escaped"}
    )
    hostile_id = requests.post(f"{url}/receive", json=hostile, timeout=30).json()["taskID"]
    assert _wait(url, hostile_id) == "422 Unprocessable Entity"
    orm = dict(event, eventType="org.pacifica.metadata.orm", eventID="orm")
    answer = requests.post(f"{url}/receive", json=orm, timeout=30)
    assert answer.status_code == 202 and answer.json()["status"] == "422 Unprocessable Entity"
    written = {p.name for p in tmp_path.iterdir()}
    assert written <= {"out", "state", "standalone.log"}, written


_HEAP_PROBE = """
import sys, threading
from pacifica.dispatcher_proxymod.cli import limit_heap_growth

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

applied = limit_heap_growth() if sys.argv[1] == "limit" else False
before = rss_mib()
lock = threading.Lock()
measured = threading.Barrier(17)
done = threading.Event()

def server_thread():  # a long-lived thread that once held a large body, one at a time
    with lock:
        body = bytearray(8 * 1024 * 1024)
        body[::4096] = b"x" * len(body[::4096])
        del body
    measured.wait()
    done.wait()

threads = [threading.Thread(target=server_thread) for _ in range(16)]
for thread in threads:
    thread.start()
measured.wait()
print(applied, round(rss_mib() - before))
done.set()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_web_server_gives_large_bodies_back_to_the_system() -> None:
    """16 threads that each once held an 8 MiB body: the server keeps none of them."""
    limited = subprocess.run(
        [sys.executable, "-c", _HEAP_PROBE, "limit"], capture_output=True, text=True, check=True
    )
    applied, kept_mib = limited.stdout.split()
    assert applied == "True"
    assert int(kept_mib) < 16, f"{kept_mib} MiB kept after the bodies were freed"
