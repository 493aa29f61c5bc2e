"""The web process is killed between recording events and publishing them.

Its rows were inserted marked queued (no UPDATE after the publish), so they look queued with
no message anywhere. The next web start re-publishes them, long before the workers' recovery
would (after ``DISPATCHER_REQUEUE_AFTER``), and each runs once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from collections.abc import Callable

import pytest
import requests
from peers import SilentPeer

from pacifica.dispatcher_proxymod.queue import QUEUE_NAME
from pacifica.dispatcher_proxymod.states import TaskStatus

from .harness import (
    Dispatcher,
    FaultData,
    Web,
    Worker,
    post_event,
    recorded_ids,
    task_row,
    wait_all_final,
)
from .services import PrivateRedis, wait_until

pytestmark = pytest.mark.fault

EVENTS = 3


def test_a_web_start_publishes_what_a_killed_web_recorded_and_never_sent(
    make_dispatcher: Callable[..., Dispatcher],
    redis_server: PrivateRedis,
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    # the workers' recovery would find the rows only after an hour: the web start must
    dispatcher = make_dispatcher("redis", requeue_after=3600.0)
    silent = SilentPeer()
    try:
        # 1. a web whose broker hangs: the writer commits the events' rows (marked queued) and
        #    then hangs in their publish, for its publish timeout (long here: the kill must
        #    come first, whatever the machine's load)
        hanging = Web(
            dataclasses.replace(
                dispatcher,
                broker_url=f"redis://127.0.0.1:{silent.port}/0",
                extra_env={**dispatcher.extra_env, "DISPATCHER_PUBLISH_TIMEOUT_SECONDS": "60"},
            )
        )
        processes.append(hanging)
        posts = [
            threading.Thread(target=_post_unanswered, args=(hanging.url, fault_data, n))
            for n in range(EVENTS)
        ]
        for post in posts:
            post.start()
        # 2. killed before the publish gives up: as soon as the first rows are committed
        recorded = wait_until(recorded_ids, 30, "the hanging web committing the events", every=0.02)
        os.killpg(hanging.process.pid, signal.SIGKILL)
        hanging.process.wait(30)
        for post in posts:
            post.join(60)
    finally:
        silent.close()
    answers = recorded_ids()
    assert set(recorded) <= set(answers), "a row vanished"
    for task_id in answers:
        row = task_row(task_id)
        assert row.status == TaskStatus.ACCEPTED.value and row.queued_at is not None
    assert redis_server.queue_length(QUEUE_NAME) == 0, "no message reached the real broker"

    # 3. the web starts again on the real broker: it sends them, with no worker running yet
    processes.append(Web(dispatcher, "web-again"))
    wait_until(
        lambda: redis_server.queue_length(QUEUE_NAME) == len(answers),
        30,
        "the restarted web publishing",
    )

    # 4. a worker runs each once
    worker = Worker(dispatcher, "consumer", concurrency=2)
    processes.append(worker)
    tasks = wait_all_final(answers, 240, f"after the restart ({worker.tail()})")
    assert [t.task_status for t in tasks] == [TaskStatus.OK] * len(answers)
    assert [t.attempts for t in tasks] == [1] * len(answers)


def _post_unanswered(url: str, data: FaultData, number: int) -> None:
    """POST an event to a web that is killed before it answers (a connection error then)."""
    with contextlib.suppress(requests.RequestException):
        post_event(url, data.event(f"killed-{number}"))
