"""The broker stops with tasks queued and while events arrive: every accepted event completes.

Runs on the private RabbitMQ node and the private Redis. First the durability the brokers give
on their own (a queued message survives a restart), then a crash under load, where the task rows
and the recovery loop cover what the broker lost or never received.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import requests

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
from .services import PrivateRabbitMQ, PrivateRedis, wait_until

pytestmark = pytest.mark.fault

QUEUED = 5
DURING_OUTAGE = 5
UNDER_LOAD = 30


class _Poster(threading.Thread):
    """Posts numbered events at a steady pace, each in its own thread (a slow answer, as while
    the broker is down, does not hold up the next event); keeps every answer."""

    def __init__(self, url: str, data: FaultData, prefix: str, count: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.url, self.data, self.prefix, self.count, self.pause = url, data, prefix, count, pause
        self.sent = 0
        self.answers: list[requests.Response] = []
        self._lock = threading.Lock()

    def _post(self, number: int) -> None:
        answer = post_event(self.url, self.data.event(f"{self.prefix}-{number}"))
        with self._lock:
            self.answers.append(answer)

    def run(self) -> None:
        senders = []
        for number in range(self.count):
            sender = threading.Thread(target=self._post, args=(number,), daemon=True)
            sender.start()
            senders.append(sender)
            self.sent += 1
            time.sleep(self.pause)
        for sender in senders:
            sender.join(timeout=120)


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_broker_outage(
    broker: str,
    request: pytest.FixtureRequest,
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    dispatcher = make_dispatcher(broker)
    server: PrivateRabbitMQ | PrivateRedis = request.getfixturevalue(
        "rabbitmq" if broker == "rabbitmq" else "redis_server"
    )
    web = Web(dispatcher)
    processes.append(web)

    # 1. no worker yet: the messages wait in the broker
    queued = [
        accepted_id(post_event(web.url, fault_data.event(f"queued-{n}"))) for n in range(QUEUED)
    ]
    assert all(task_row(task_id).queued_at is not None for task_id in queued)
    assert server.queue_length(QUEUE_NAME) == QUEUED

    # 2. the broker goes away: Redis crashes (its append-only file is fsynced on every write),
    #    RabbitMQ stops cleanly (it writes persistent messages of durable queues to disk)
    if isinstance(server, PrivateRedis):
        server.crash()
    else:
        server.stop()
    # events still arrive and are accepted: recorded, not queued
    outage = _Poster(web.url, fault_data, "during", DURING_OUTAGE, 0.1)
    outage.run()
    during = [accepted_id(answer) for answer in outage.answers]
    assert all(task_row(task_id).queued_at is None for task_id in during)
    server.start()
    assert server.queue_length(QUEUE_NAME) == QUEUED, "the queued messages survived the restart"

    # 3. a worker consumes while the broker crashes and comes back, and events keep arriving
    worker = Worker(dispatcher, "consumer", concurrency=2)
    processes.append(worker)
    worker.wait_ready()
    poster = _Poster(web.url, fault_data, "load", UNDER_LOAD, 0.2)
    poster.start()
    wait_until(lambda: poster.sent >= UNDER_LOAD // 3, 60, "the first third of the load")
    server.crash()
    wait_until(lambda: poster.sent >= UNDER_LOAD // 2, 60, "events during the crash")
    server.start()
    poster.join(timeout=180)
    assert not poster.is_alive() and len(poster.answers) == UNDER_LOAD
    loaded = [accepted_id(answer) for answer in poster.answers]

    everything = queued + during + loaded
    tasks = wait_all_final(everything, 240, f"after the outages ({worker.tail()})")
    not_ok = [
        (t.event_id, t.status, t.error_message) for t in tasks if t.task_status is not TaskStatus.OK
    ]
    assert not not_ok, not_ok
    # each ran once and was delivered once: repeated messages found the row already final
    assert [t.attempts for t in tasks] == [1] * len(tasks)
    assert len(dispatcher.result_folders()) == len(everything)
