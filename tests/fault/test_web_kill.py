"""The web process is killed between recording events and publishing them.

Its rows were inserted marked queued (no UPDATE after the publish), so they look queued with
no message anywhere. The next web start re-publishes them, long before the workers' recovery
would (after ``DISPATCHER_REQUEUE_AFTER``), and each runs once.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Callable

import pytest
from peers import SilentPeer

from pacifica.dispatcher_proxymod.queue import QUEUE_NAME
from pacifica.dispatcher_proxymod.states import TaskStatus

from .harness import (
    Dispatcher,
    FaultData,
    Web,
    Worker,
    accepted_id,
    post_event,
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
        # 1. a web whose broker hangs: each 202 comes after its bounded wait (2 s), the row
        #    committed and marked queued, its message stuck in the hanging publish
        hanging = Web(
            dataclasses.replace(dispatcher, broker_url=f"redis://127.0.0.1:{silent.port}/0")
        )
        processes.append(hanging)
        answers: list[str] = []
        posts = [
            threading.Thread(
                target=lambda n=n: answers.append(
                    accepted_id(post_event(hanging.url, fault_data.event(f"killed-{n}")))
                )
            )
            for n in range(EVENTS)
        ]
        for post in posts:
            post.start()
        for post in posts:
            post.join(60)
        assert len(answers) == EVENTS
        # 2. killed before the publish gives up (Redis socket timeout: 10 s)
        os.killpg(hanging.process.pid, signal.SIGKILL)
        hanging.process.wait(30)
    finally:
        silent.close()
    for task_id in answers:
        row = task_row(task_id)
        assert row.status == TaskStatus.ACCEPTED.value and row.queued_at is not None
    assert redis_server.queue_length(QUEUE_NAME) == 0, "no message reached the real broker"

    # 3. the web starts again on the real broker: it sends them, with no worker running yet
    processes.append(Web(dispatcher, "web-again"))
    wait_until(
        lambda: redis_server.queue_length(QUEUE_NAME) == EVENTS, 30, "the restarted web publishing"
    )

    # 4. a worker runs each once
    worker = Worker(dispatcher, "consumer", concurrency=2)
    processes.append(worker)
    tasks = wait_all_final(answers, 240, f"after the restart ({worker.tail()})")
    assert [t.task_status for t in tasks] == [TaskStatus.OK] * EVENTS
    assert [t.attempts for t in tasks] == [1] * EVENTS
