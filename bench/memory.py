"""Benchmark memory: peak RSS of the web process under load and of a worker moving large files.

Each measured process is started fresh for its run (VmHWM, the kernel's peak RSS of a process,
never goes down) and sampled every 20 ms with its children (bench/benchkit/rss.py).

* web: the dispatcher web process vs the bare cheroot ceiling (bench/ceiling.py) under the
  same wrk load, alternating ceiling/web, for the example event at 64 connections and bodies of
  1 MiB and of exactly ``DISPATCHER_MAX_BODY_BYTES`` at 16 connections (the thread pool size,
  so as many bodies as the server can hold at once);
* worker, local transfer: one event whose model (bench/models/bench_copy.py) copies a
  ``--size`` MiB input to an output as large, vs the same with a 1 MiB input, alternating;
* worker, Pacifica transfer (the harness's services): the same event, its input uploaded to
  Pacifica first (cached between runs), the output ingested; 1 MiB baseline first.

    .venv/bin/python bench/memory.py [--quick] [--size 1024] [--only web,local,pacifica]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from benchkit import (
    BENCH,
    MIB,
    SETUPS,
    BenchError,
    Service,
    Setup,
    TreeMemory,
    dispatcher_env,
    empty_tasks,
    event_template,
    example_event,
    make_setup,
    median,
    post_many,
    print_machine,
    print_table,
    purge_broker,
    ratio,
    run_wrk,
    scratch,
    start_ceiling,
    start_web,
    start_worker,
    task_rows,
)

from pacifica.dispatcher_proxymod.settings import Settings

DATA_ROOT = Path(os.environ.get("DISPATCHER_BENCH_DATA", "/tmp/dispatcher-bench-data"))
STACK_JSON = (
    Path(os.environ.get("DISPATCHER_PACIFICA_STACK_ROOT", "/tmp/dispatcher-pacifica-stack"))
    / "stack.json"
)
MODEL = BENCH / "models" / "bench_copy.py"
BASELINE_MIB = 1
BIG_NAME, SMALL_NAME = "big.csv", "small.csv"
#: Large-body requests per connection in the web part.
LARGE_REQUESTS = 3


# --------------------------------------------------------------------------- web


def web_memory(setup_name: str, rounds: int, seconds: float, work: Path) -> list[list[Any]]:
    """Peak RSS of the ceiling and the dispatcher web process under each load.

    The example event goes through wrk for ``seconds``; large bodies are a fixed number of
    requests (``LARGE_REQUESTS`` per connection), so each run ends with every body answered.
    """
    limit = Settings().max_body_bytes
    loads = [
        ("example event (wrk)", event_template(example_event()), 64),
        ("1 MiB bodies", event_template(example_event(), pad_to=MIB), 16),
        (
            f"{limit / MIB:g} MiB bodies (the limit)",
            event_template(example_event(), pad_to=limit),
            16,
        ),
    ]
    state = work / "web-state"
    state.mkdir()
    setup = make_setup(setup_name, state, "memory")
    peaks: dict[tuple[str, str], list[float]] = {}
    idle: dict[tuple[str, str], list[float]] = {}
    served: dict[tuple[str, str], int] = {}
    for _ in range(rounds):
        for label, template, connections in loads:
            for target in ("ceiling", "web"):
                empty_tasks(setup)
                purge_broker(setup, state)
                service = (
                    start_ceiling(work)
                    if target == "ceiling"
                    else start_web("web-memory", dispatcher_env(setup, state), work)
                )
                try:
                    with TreeMemory(service.pid) as memory:
                        idle.setdefault((label, target), []).append(memory.peak_of())
                        if label.startswith("example"):
                            result = run_wrk(
                                service.url,
                                template,
                                connections,
                                seconds,
                                work,
                                collect_ids=False,
                            )
                            statuses = dict(result.statuses)
                            if result.socket_errors:
                                statuses["socket errors"] = result.socket_errors
                        else:
                            count = LARGE_REQUESTS * connections
                            statuses = post_many(service.url, template, count, connections)
                finally:
                    service.stop()
                peaks.setdefault((label, target), []).append(memory.peak_of())
                ok = sum(n for status, n in statuses.items() if status.startswith("2"))
                served[(label, target)] = served.get((label, target), 0) + ok
                if ok != sum(statuses.values()):
                    raise BenchError(f"{target} under {label}: answers {statuses}")
    empty_tasks(setup)
    rows = []
    for label, _, connections in loads:
        ceiling = median(peaks[(label, "ceiling")])
        for target in ("ceiling", "web"):
            values = peaks[(label, target)]
            rows.append(
                [
                    f"{target}: {label}",
                    connections,
                    f"{median(idle[(label, target)]):.1f}",
                    f"{median(values):.1f}",
                    f"{ratio(median(values), ceiling):.2f}",
                    " ".join(f"{v:.1f}" for v in values),
                    served[(label, target)],
                ]
            )
    return rows


# --------------------------------------------------------------------------- data


def _write_csv(path: Path, size: int) -> str:
    """Write a CSV of exactly ``size`` bytes; return its sha1."""
    digest = hashlib.sha1()  # noqa: S324 - Pacifica's checksum
    line = b"2010,1.2345678\n"
    block = b"year,value\n" + line * ((8 * MIB) // len(line))
    written = 0
    with path.open("wb") as out:
        while written < size:
            chunk = block[: size - written]
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - Pacifica's checksum
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def data_dir(size_mib: int) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A data folder (cached) with inputs/big.csv of ``size_mib`` MiB, a small CSV, the model."""
    folder = DATA_ROOT / f"{size_mib}MiB"
    facts_file = folder / "files.json"
    if facts_file.exists() and _sha1(folder / "models" / MODEL.name) == _sha1(MODEL):
        facts: dict[str, dict[str, Any]] = json.loads(facts_file.read_text())
        return folder, facts
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "inputs").mkdir(parents=True)
    (folder / "models").mkdir()
    shutil.copyfile(MODEL, folder / "models" / MODEL.name)
    facts = {
        BIG_NAME: {
            "subdir": "inputs",
            "sha1": _write_csv(folder / "inputs" / BIG_NAME, size_mib * MIB),
        },
        SMALL_NAME: {"subdir": "inputs", "sha1": _write_csv(folder / "inputs" / SMALL_NAME, 1024)},
        MODEL.name: {"subdir": "models", "sha1": _sha1(folder / "models" / MODEL.name)},
    }
    for name, fact in facts.items():
        fact["size"] = (folder / fact["subdir"] / name).stat().st_size
    facts_file.write_text(json.dumps(facts, indent=1))
    return folder, facts


def copy_event(transaction: int, facts: dict[str, dict[str, Any]], event_id: str) -> dict[str, Any]:
    """An ingest event for ``transaction`` whose one config runs bench_copy on big.csv."""
    stack = {"submitter": 10, "project": "1234a", "instrument": 54}
    if STACK_JSON.exists():
        stack.update({k: v for k, v in json.loads(STACK_JSON.read_text()).items() if k in stack})
    key_values = {
        "proxymod.task": "advance",
        "proxymod.version": "v0.0.1",
        "proxymod.configs_count": "1",
        "proxymod.config_1.PROJECT.runtime": "0",
        "proxymod.config_1.PROJECT.failure": "0",
        "proxymod.config_1.INPUTS.in_dir": "inputs",
        "proxymod.config_1.INPUTS.in_file_one": BIG_NAME,
        "proxymod.config_1.INPUTS.in_file_two": SMALL_NAME,
        "proxymod.config_1.OUTPUTS.out_dir": "outputs",
    }
    data: list[dict[str, Any]] = [
        {"destinationTable": f"Transactions.{field}", "value": stack[field]}
        for field in ("submitter", "project", "instrument")
    ]
    data += [
        {"destinationTable": "TransactionKeyValue", "key": key, "value": value}
        for key, value in key_values.items()
    ]
    for name, fact in facts.items():
        data.append(
            {
                "destinationTable": "Files",
                "name": name,
                "subdir": fact["subdir"],
                "mimetype": "text/x-python" if name.endswith(".py") else "text/csv",
                "hashtype": "sha1",
                "hashsum": fact["sha1"],
                "size": fact["size"],
            }
        )
    data.append({"destinationTable": "Transactions._id", "value": transaction})
    return {
        "cloudEventsVersion": "0.1",
        "eventType": "org.pacifica.metadata.ingest",
        "source": f"http://metadata.pacifica.org/transactions?_id={transaction}",
        "eventID": event_id,
        "eventTime": "2026-11-27T12:00:05",
        "extensions": {},
        "contentType": "application/json",
        "data": data,
    }


# --------------------------------------------------------------------------- worker


def worker_run(
    label: str,
    env: dict[str, str],
    setup: Setup,
    state: Path,
    web: Service,
    event: dict[str, Any],
    work: Path,
    timeout: float,
) -> dict[str, Any]:
    """One fresh worker, one event to a final status; the tree's memory peaks."""
    empty_tasks(setup)
    purge_broker(setup, state)
    worker = start_worker(f"worker-{label}", env, work, 1)
    try:
        with TreeMemory(worker.pid) as memory:
            started = time.monotonic()
            answer = requests.post(f"{web.url}/receive", json=event, timeout=60)
            if answer.status_code != 202:
                raise BenchError(f"POST /receive answered {answer.status_code}: {answer.text}")
            status = _wait_status(setup, worker, timeout)
            elapsed = time.monotonic() - started
            attempts = int(task_rows(setup, ("attempts",))[0]["attempts"])
    finally:
        worker.stop()
    if not status.startswith("200"):
        raise BenchError(f"{label}: task ended {status}")

    def is_model(name: str) -> bool:
        return name.startswith("model") or name == "bwrap"

    def is_worker(name: str) -> bool:
        return not is_model(name) and name not in ("setpriv",)

    return {
        "worker_mib": memory.peak_of(is_worker),
        "main_mib": memory.peak_of(lambda name: name == "celery main"),
        "child_mib": memory.peak_of(lambda name: name == "pool child"),
        "model_mib": memory.peak_of(is_model),
        "tree_mib": memory.tree_mib(),
        "seconds": elapsed,
        "attempts": attempts,
    }


def _wait_status(setup: Setup, worker: Service, timeout: float) -> str:
    """The task's final status (with its error message, if any)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = task_rows(setup, ("status", "error_message"))
        if rows and str(rows[0]["status"])[:3] in ("200", "422", "500"):
            message = rows[0]["error_message"]
            return str(rows[0]["status"]) + (f": {message}" if message else "")
        if worker.process.poll() is not None:
            raise BenchError(f"the worker died:\n{worker.log_tail()}")
        time.sleep(0.5)
    raise BenchError(f"no final status within {timeout:g} s:\n{worker.log_tail()}")


def worker_rows(
    transfer: str, size_mib: int, rounds: int, runs: dict[int, list[dict[str, Any]]]
) -> list[list[Any]]:
    """Table rows of one transfer: baseline and big size, medians and ratio."""
    rows = []
    base = median([run["worker_mib"] for run in runs[BASELINE_MIB]])
    for size in (BASELINE_MIB, size_mib):
        measured = runs[size]
        peak = median([run["worker_mib"] for run in measured])
        rows.append(
            [
                f"worker, {transfer}, {size} MiB in + {size} MiB out",
                f"{peak:.1f}",
                f"{ratio(peak, base):.2f}",
                " ".join(f"{run['worker_mib']:.1f}" for run in measured),
                f"{median([run['main_mib'] for run in measured]):.1f}",
                f"{median([run['child_mib'] for run in measured]):.1f}",
                f"{median([run['model_mib'] for run in measured]):.1f}",
                f"{median([run['tree_mib'] for run in measured]):.1f}",
                f"{median([run['seconds'] for run in measured]):.1f}",
                " ".join(str(run["attempts"]) for run in measured),
            ]
        )
    return rows


def stack_env() -> dict[str, str]:
    """pacifica-cli's endpoint variables for the harness's services."""
    if not STACK_JSON.exists():
        raise BenchError(
            f"{STACK_JSON} is missing: start the services "
            "(python3 tests/integration/stack/pacifica_stack.py up)"
        )
    info = json.loads(STACK_JSON.read_text())
    return {
        "UPLOAD_URL": info["upload_url"],
        "UPLOAD_STATUS_URL": info["upload_status_url"],
        "UPLOAD_POLICY_URL": info["upload_policy_url"],
        "UPLOAD_VALIDATION_URL": info["upload_validation_url"],
        "DOWNLOAD_URL": info["cartd_url"],
        "DOWNLOAD_POLICY_URL": info["download_policy_url"],
    }


def pacifica_transaction(folder: Path, facts: dict[str, dict[str, Any]]) -> int:
    """The transaction holding this data folder's files in Pacifica (uploaded once, cached)."""
    env = stack_env()
    cache = folder / "pacifica.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("upload_url") == env["UPLOAD_URL"] and cached.get("facts") == facts:
            known = requests.get(
                f"{env['DOWNLOAD_POLICY_URL']}/{cached['transaction']}", timeout=60
            )
            if known.ok and len(known.json().get("files", {})) == len(facts):
                return int(cached["transaction"])
    from pacifica.uploader import Uploader
    from pacifica.uploader.bundler import Bundler
    from pacifica.uploader.metadata import MetaData, MetaObj

    info = json.loads(STACK_JSON.read_text())
    metadata = MetaData(
        [
            MetaObj(destinationTable="Transactions.submitter", value=info["submitter"]),
            MetaObj(destinationTable="Transactions.project", value=info["project"]),
            MetaObj(destinationTable="Transactions.instrument", value=info["instrument"]),
            MetaObj(
                destinationTable="TransactionKeyValue", key="bench.run", value=uuid.uuid4().hex
            ),
        ]
    )
    handles = {name: (folder / fact["subdir"] / name).open("rb") for name, fact in facts.items()}
    bundle = folder / "bundle.tar"
    try:
        file_data = [
            {
                "fileobj": handles[name],
                "name": f"data/{fact['subdir']}/{name}",
                "size": fact["size"],
                "mtime": time.time(),
            }
            for name, fact in facts.items()
        ]
        with bundle.open("wb") as out:
            Bundler(metadata, file_data).stream(out)
    finally:
        for handle in handles.values():
            handle.close()
    uploader = Uploader(upload_url=env["UPLOAD_URL"], status_url=env["UPLOAD_STATUS_URL"])
    try:
        with bundle.open("rb") as stream:
            job_id = int(uploader.upload(stream, content_length=bundle.stat().st_size))
    finally:
        bundle.unlink()
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        state = uploader.getstate(job_id)
        if state.get("state") == "FAILED":
            raise BenchError(f"ingest of the input bundle failed: {state}")
        if state.get("task") == "ingest metadata" and float(state.get("task_percent", 0)) >= 100:
            cache.write_text(
                json.dumps({"upload_url": env["UPLOAD_URL"], "facts": facts, "transaction": job_id})
            )
            return job_id
        time.sleep(1)
    raise BenchError(f"ingest job {job_id} of the input bundle did not finish in 30 min")


def worker_memory(
    transfer: str,
    setup_name: str,
    size_mib: int,
    rounds: int,
    work: Path,
) -> list[list[Any]]:
    """Peak RSS of a worker moving ``size_mib`` in and out, vs 1 MiB, through ``transfer``."""
    state = work / f"{transfer}-state"
    state.mkdir()
    setup = make_setup(setup_name, state, "memory")
    folders = {size: data_dir(size) for size in (BASELINE_MIB, size_mib)}
    transactions: dict[int, int] = {}
    extra: dict[str, str] = {}
    if transfer == "pacifica":
        extra = stack_env()
        for size, (folder, facts) in folders.items():
            started = time.monotonic()
            transactions[size] = pacifica_transaction(folder, facts)
            print(
                f"  input of {size} MiB is Pacifica transaction {transactions[size]} "
                f"({time.monotonic() - started:.0f} s to make sure)",
                flush=True,
            )
    empty_tasks(setup)
    web_env = dispatcher_env(setup, state)
    web = start_web(f"web-{transfer}", web_env, work)
    runs: dict[int, list[dict[str, Any]]] = {BASELINE_MIB: [], size_mib: []}
    try:
        for _ in range(rounds):
            for size, (folder, facts) in folders.items():
                env = dispatcher_env(
                    setup,
                    state,
                    DISPATCHER_TRANSFER=transfer,
                    DISPATCHER_DATA_DIR=str(folder),
                    DISPATCHER_OUTPUT_DIR=str(work / "results"),
                    DISPATCHER_KEEP_WORK="never",
                    DISPATCHER_MODEL_FILE_SIZE_MB=str(size + 64),
                    # Cartd may never finish a cart whose pull from the archive failed (seen on
                    # the shared harness): a bounded wait lets the dispatcher's retry ask again
                    DISPATCHER_CART_TIMEOUT=str(120 + size // 4),
                    DISPATCHER_INGEST_TIMEOUT="1800",
                    **extra,
                )
                event = copy_event(transactions.get(size, 1101), facts, uuid.uuid4().hex)
                run = worker_run(f"{transfer}-{size}", env, setup, state, web, event, work, 1800)
                runs[size].append(run)
                print(
                    f"  {transfer} {size} MiB: worker {run['worker_mib']:.1f} MiB "
                    f"(main {run['main_mib']:.1f}, child {run['child_mib']:.1f}), "
                    f"model {run['model_mib']:.1f} MiB, "
                    f"tree {run['tree_mib']:.1f} MiB, {run['seconds']:.1f} s, "
                    f"{run['attempts']} attempt(s)",
                    flush=True,
                )
                shutil.rmtree(work / "results", ignore_errors=True)
    finally:
        web.stop()
        empty_tasks(setup)
    return worker_rows(transfer, size_mib, rounds, runs)


def main() -> int:
    """Run the chosen parts and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, 1 round, 3 s wrk runs")
    parser.add_argument("--size", type=int, default=1024, help="MiB moved in and out")
    parser.add_argument("--only", default="web,local,pacifica", help="parts to run")
    parser.add_argument("--setup", default="pg-redis", choices=SETUPS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pacifica-rounds", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep logs and state")
    args = parser.parse_args()
    size = 64 if args.quick else args.size
    rounds = 1 if args.quick else args.rounds
    seconds = 3.0 if args.quick else 5.0
    parts = set(args.only.split(","))
    print_machine()
    web_rows: list[list[Any]] = []
    worker_table: list[list[Any]] = []
    actions: list[tuple[str, Callable[[Path], list[list[Any]]]]] = []
    if "web" in parts:
        actions.append(("web", lambda w: web_memory(args.setup, rounds, seconds, w)))
    for transfer in ("local", "pacifica"):
        if transfer in parts:
            count = 1 if transfer == "pacifica" else rounds
            if transfer == "pacifica":
                count = args.pacifica_rounds

            def measure(w: Path, t: str = transfer, c: int = count) -> list[list[Any]]:
                return worker_memory(t, args.setup, size, c, w)

            actions.append((transfer, measure))
    with scratch("bench-memory-", keep=args.keep) as work:
        try:
            for name, action in actions:
                print(f"# {name}", flush=True)
                (web_rows if name == "web" else worker_table).extend(action(work))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if web_rows:
        print()
        print_table(
            [
                "web process (fresh per run)",
                "conns",
                "RSS at start MiB",
                "peak RSS MiB (median)",
                "ratio to ceiling",
                "per run",
                "2xx (all runs)",
            ],
            web_rows,
        )
    if worker_table:
        print()
        print_table(
            [
                "worker (fresh per run)",
                "worker peak MiB (max VmHWM of its processes)",
                "ratio to 1 MiB",
                "per run",
                "celery main MiB",
                "pool child MiB",
                "model MiB (sandbox)",
                "tree peak PSS MiB",
                "seconds",
                "attempts",
            ],
            worker_table,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
