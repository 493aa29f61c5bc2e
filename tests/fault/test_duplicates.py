"""The same event delivered 50 times at once: one task, one run, 50 answers 2xx with one id."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.states import TaskStatus

from .harness import Dispatcher, FaultData, ModelConfig, Web, Worker, post_event, wait_final
from .services import wait_until

pytestmark = pytest.mark.fault

DELIVERIES = 50


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_fifty_concurrent_deliveries_of_one_event(
    broker: str,
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    dispatcher = make_dispatcher(broker)
    web = Web(dispatcher)
    worker = Worker(dispatcher, "dup", concurrency=2)
    processes += [web, worker]
    worker.wait_ready()
    event = fault_data.event("delivered-fifty-times", (ModelConfig(runtime=1),))
    with ThreadPoolExecutor(max_workers=DELIVERIES) as pool:
        answers = list(pool.map(lambda _: post_event(web.url, event), range(DELIVERIES)))

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] * (DELIVERIES - 1) + [202], codes
    bodies = [answer.json() for answer in answers]
    assert len({body["taskID"] for body in bodies}) == 1
    assert sum(not body["duplicate"] for body in bodies) == 1
    task_id = bodies[0]["taskID"]
    with store.connection():
        assert store.Task.select().count() == 1

    task = wait_final(task_id, 120, worker.tail())
    assert task.task_status is TaskStatus.OK, task.error_message
    assert task.attempts == 1
    assert len(json.loads(task.models_json)) == 1
    # late deliveries after the end are answered the same way and change nothing
    late = post_event(web.url, event)
    assert late.status_code == 200 and late.json()["taskID"] == task_id
    ended = f"task {task_id} ended succeeded (200 OK)"
    wait_until(lambda: ended in worker.tail(100_000), 30, "the worker's log line")
    assert worker.tail(100_000).count(f"task {task_id} ended ") == 1, "one run"
    assert len(dispatcher.result_folders()) == 1
