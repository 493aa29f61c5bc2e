"""Run the example end to end on the embedded default and show the results.

Starts ``pacifica-dispatcher-proxymod standalone`` (web server + worker, SQLite, embedded broker,
local transfer) on a free port, packs ``examples/data`` with ``examples/configs`` into a fresh event
(a new id each run, so edits to a model are run, not answered from an earlier task), POSTs it as
Pacifica Notifications would,
waits for the task to end, prints a table of the models' outcomes and the run page's URL, and
keeps serving the dashboard until Ctrl-C (``--no-wait``: stops at once).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _request(url: str, body: bytes | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL we build ourselves
        url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _print_outcomes(record: dict[str, Any]) -> None:
    """A short table: one line per model, then the charts and where the results are."""
    rows = [("model", "outcome", "took", "isolation")]
    for run in record["models"]:
        took = run.get("duration_seconds")
        rows.append(
            (
                run["model"],
                run["outcome"],
                "" if took is None else f"{took:.1f} s",
                run["isolation"],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())
    if record["error"]:
        print(f"  why: {record['error']['message']}")
    result = record["result"]["location"]
    if result:
        files = [path for path in Path(result).rglob("*") if path.is_file()]
        plots = sorted(path.name for path in Path(result, "plots").glob("*.svg"))
        print(f"results: {result} ({len(files)} files, {len(plots)} charts in plots/)")


def _fresh_event(workdir: Path) -> Path:
    """``pack`` the example afresh: the files as they are now, under a new event id, so the
    service runs it again (the same id would be answered with the earlier task)."""
    event = workdir / "event.json"
    configs = [f"--config={HERE / 'configs' / f'config_{n}.ini'}" for n in (1, 2, 3)]
    command = [sys.executable, "-m", "pacifica.dispatcher_proxymod", "pack", str(HERE / "data")]
    subprocess.run([*command, *configs, f"--output={event}"], check=True)
    event_id = json.loads(event.read_text(encoding="utf-8"))["eventID"]
    print(f"packed examples/data afresh as event {event_id} (a new id each run: it runs again)")
    return event


def main() -> int:
    """Run the demo; the exit status is 0 when the task reached 200 OK."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", default="demo-run", help="where the demo works")
    parser.add_argument(
        "--no-wait", action="store_true", help="stop the service at once instead of serving"
    )
    arguments = parser.parse_args()
    workdir = Path(arguments.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "service.log"
    print(f"starting the standalone service on {url} (log: {log_path})")
    with log_path.open("wb") as log:
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pacifica.dispatcher_proxymod",
                "standalone",
                "--data-dir",
                str(HERE / "data"),
                "--output-dir",
                str(workdir / "results"),
                "--state-dir",
                str(workdir / "state"),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _request(f"{url}/health")
                break
            except OSError:
                if time.monotonic() > deadline or service.poll() is not None:
                    print(log_path.read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.2)
        accepted = _request(f"{url}/receive", _fresh_event(workdir).read_bytes())
        print(f"POST /receive -> {accepted}")
        task_id = accepted["taskID"]
        status = accepted["status"]
        while status in ("202 Accepted", "102 Processing"):
            time.sleep(0.2)
            status = _request(f"{url}/status/{task_id}")
        record = _request(f"{url}/get/{task_id}")
        print(f"GET /status/{task_id} -> {status!r}")
        _print_outcomes(record)
        print(f"run page: {url}/ui/task/{task_id}")
        if not arguments.no_wait:
            print("serving the dashboard until Ctrl-C (./demo --no-wait stops at once)")
            try:
                while service.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                print()
        return 0 if status == "200 OK" else 1
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
