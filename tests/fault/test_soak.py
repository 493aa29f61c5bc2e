"""A soak: many events with model failures, timeouts, kills, slow and flaky transfers.

Every task must end in a final status with a reason, none may sit in 102 Processing longer than
its limits allow, each task delivers exactly one result, and the worker's memory and open files
must not grow between the warm-up and the end. ``FAULT_SOAK_EVENTS`` sets the number of events
(default 500).

The faults, drawn from a seeded random generator so every run injects the same mix:

``ok``          runtime 0
``failure``     PROJECT.failure = 1: the model raises on purpose
``timeout``     runtime over DISPATCHER_MODEL_TIMEOUT: the sandbox kills it
``kill``        the test SIGKILLs the model process from outside
``slow``        the transfer takes a second longer (tests/fault/slow_transfer_worker.py)
``transient``   the first download fails with a transient error, the retry succeeds
``pool_kill``   the test SIGKILLs the worker's pool process that runs the task
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.store import utcnow

from .harness import (
    TRANSFER_DELAY_KEY,
    TRANSIENT_FAILURES_KEY,
    Dispatcher,
    FaultData,
    ModelConfig,
    Web,
    Worker,
    accepted_id,
    children,
    model_pids,
    model_runner_pids,
    open_fds,
    post_event,
    rss_bytes,
    wait_all_final,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(1200)]

SOAK_EVENTS = int(os.environ.get("FAULT_SOAK_EVENTS", "500"))
MODEL_TIMEOUT = 3
SLOW_SECONDS = 1.0
STALE_AFTER = 4.0
#: The longest a task may honestly stay in 102: a model at its timeout, a slow transfer, a
#: killed pool process noticed (stale heartbeat) and the retry's countdown, with slack.
PROCESSING_BOUND = MODEL_TIMEOUT + SLOW_SECONDS + 2 * STALE_AFTER + 20
KINDS = {
    "ok": 0.72,
    "failure": 0.10,
    "slow": 0.08,
    "transient": 0.05,
    "timeout": 0.02,
    "kill": 0.025,
    "pool_kill": 0.005,
}
#: Memory may grow by this factor plus this many bytes (caches, allocator arenas) and no more.
RSS_FACTOR, RSS_SLACK = 1.5, 40 * 1024 * 1024
FD_SLACK = 16


def _event(data: FaultData, number: int, kind: str) -> dict[str, Any]:
    config, extra = ModelConfig(), {}
    if kind == "failure":
        config = ModelConfig(failure=1)
    elif kind == "timeout":
        config = ModelConfig(runtime=MODEL_TIMEOUT + 3)
    elif kind in ("kill", "pool_kill"):
        config = ModelConfig(runtime=2)
    elif kind == "slow":
        extra = {TRANSFER_DELAY_KEY: str(SLOW_SECONDS)}
    elif kind == "transient":
        extra = {TRANSIENT_FAILURES_KEY: "1"}
    return data.event(f"soak-{number}-{kind}", (config,), extra=extra)


class _Killer(threading.Thread):
    """Kills the model (``kill``) or the pool process (``pool_kill``) of marked tasks."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(daemon=True)
        self.worker = worker
        self.targets: dict[str, str] = {}  # task id -> kind
        self.done: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for task_id, kind in list(self.targets.items()):
                if task_id not in self.done and self._kill(task_id, kind):
                    self.done.add(task_id)

    def _kill(self, task_id: str, kind: str) -> bool:
        if kind == "kill":
            runners = model_runner_pids(task_id)
            for pid in runners:
                _signal(pid, signal.SIGKILL)
            return bool(runners)
        sandboxes = set(model_pids(task_id))
        for pool in children(self.worker.pid):
            if sandboxes & set(children(pool)):
                _signal(pool, signal.SIGKILL)
                return True
        return False


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


class _StuckWatch(threading.Thread):
    """Samples the rows in 102 Processing; remembers any older than the bound."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.too_long: list[tuple[str, float]] = []
        self.oldest = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            now = utcnow()
            with store.connection():
                rows = list(
                    store.Task.select(store.Task.id, store.Task.started).where(
                        store.Task.status == TaskStatus.PROCESSING.value
                    )
                )
            store.close_database()
            for row in rows:
                if row.started is None:
                    continue
                age = (now - row.started) / timedelta(seconds=1)
                self.oldest = max(self.oldest, age)
                if age > PROCESSING_BOUND:
                    self.too_long.append((row.id, age))


def _resources(worker: Worker) -> dict[str, int]:
    """RSS and open files of the main process and the largest pool process."""
    pool = [pid for pid in worker.pool_pids() if pid != worker.pid]
    return {
        "main_rss": rss_bytes(worker.pid),
        "main_fds": open_fds(worker.pid),
        "pool_rss": max((rss_bytes(pid) for pid in pool), default=0),
        "pool_fds": max((open_fds(pid) for pid in pool), default=0),
    }


def test_soak(
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    dispatcher = make_dispatcher(
        "rabbitmq",
        model_timeout=MODEL_TIMEOUT,
        stale_after=STALE_AFTER,
        requeue_after=600,  # longer than the queue's wait: no needless re-publishing
    )
    dispatcher.extra_env["FAULT_COUNTER_DIR"] = str(dispatcher.root / "counters")
    web = Web(dispatcher)
    worker = Worker(dispatcher, "soak", concurrency=2, slow_transfer=True)
    processes += [web, worker]
    worker.wait_ready()
    generator = random.Random(20261128)
    kinds = generator.choices(list(KINDS), weights=list(KINDS.values()), k=SOAK_EVENTS)
    events = [_event(fault_data, number, kind) for number, kind in enumerate(kinds)]

    killer = _Killer(worker)
    watch = _StuckWatch()
    killer.start()
    watch.start()
    started = time.monotonic()
    warm_up = max(SOAK_EVENTS // 5, 10)

    def post(number: int) -> str:
        task_id = accepted_id(post_event(web.url, events[number]))
        if kinds[number] in ("kill", "pool_kill"):  # before a worker can take it up
            killer.targets[task_id] = kinds[number]
        return task_id

    with ThreadPoolExecutor(max_workers=4) as pool:
        task_ids = list(pool.map(post, range(warm_up)))
        wait_all_final(task_ids, 300, "(warm-up)")
        warm = _resources(worker)
        task_ids += list(pool.map(post, range(warm_up, SOAK_EVENTS)))
    tasks = wait_all_final(task_ids, 900, "(soak)")
    elapsed = time.monotonic() - started
    end = _resources(worker)
    killer.stop.set()
    watch.stop.set()
    killer.join(timeout=10)
    watch.join(timeout=10)

    wrong = []
    for task, kind in zip(tasks, kinds, strict=True):
        expected, words = {
            "failure": (TaskStatus.FAILED, "on purpose"),
            "timeout": (TaskStatus.FAILED, "timed out"),
            "kill": (TaskStatus.FAILED, "killed"),
        }.get(kind, (TaskStatus.OK, ""))
        reason = task.error_message or ""
        if task.task_status is not expected or words not in reason:
            wrong.append((kind, task.id, task.status, reason))
        elif expected is not TaskStatus.OK and not task.error_type:
            wrong.append((kind, task.id, "no error type", reason))
        elif task.result_location is None:
            wrong.append((kind, task.id, "nothing delivered", reason))
    assert not wrong, f"{len(wrong)} tasks ended wrong, e.g. {wrong[:5]}"
    killed = {kind: sum(1 for t in killer.done if killer.targets[t] == kind) for kind in KINDS}
    assert killed["kill"] == kinds.count("kill") and killed["pool_kill"] == kinds.count(
        "pool_kill"
    ), f"every kill happened: {killed}"
    attempts = Counter((kind, task.attempts) for task, kind in zip(tasks, kinds, strict=True))
    assert all(n >= 2 for (kind, n) in attempts if kind in ("transient", "pool_kill")), attempts
    assert not watch.too_long, f"stuck in 102 Processing: {watch.too_long[:5]}"
    # one delivery per task, even for the retried and the re-run ones
    assert len(dispatcher.result_folders()) == SOAK_EVENTS
    assert end["main_rss"] <= warm["main_rss"] * RSS_FACTOR + RSS_SLACK, (warm, end)
    assert end["pool_rss"] <= warm["pool_rss"] * RSS_FACTOR + RSS_SLACK, (warm, end)
    assert end["main_fds"] <= warm["main_fds"] + FD_SLACK, (warm, end)
    assert end["pool_fds"] <= warm["pool_fds"] + FD_SLACK, (warm, end)
    print(
        f"\nsoak: {SOAK_EVENTS} events in {elapsed:.0f} s; kinds {Counter(kinds)}; "
        f"attempts {dict(attempts)}; oldest in 102: {watch.oldest:.1f} s; "
        f"resources warm {warm} end {end}"
    )
