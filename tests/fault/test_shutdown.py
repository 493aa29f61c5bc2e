"""Graceful shutdown (SIGTERM) of the web server and the worker: nothing in flight is lost.

The web server answers the requests it is reading when SIGTERM comes. The worker's warm
shutdown lets a running model finish and leaves waiting tasks in the broker; a cold shutdown
(SIGQUIT) kills the running model, and that task is run again after a restart.
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable

import pytest

from pacifica.dispatcher_proxymod.store import TaskStatus

from .harness import (
    Dispatcher,
    FaultData,
    ModelConfig,
    Web,
    Worker,
    accepted_id,
    model_pids,
    model_runner_pids,
    post_event,
    task_row,
    wait_all_final,
)
from .services import port_is_open, wait_until

pytestmark = pytest.mark.fault

IN_FLIGHT = 3


def _start_request(port: int, body: bytes) -> socket.socket:
    """Open a POST /receive and send its headers and half its body."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        "POST /receive HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    connection.sendall(head + body[: len(body) // 2])
    return connection


def _finish_request(connection: socket.socket, body: bytes) -> tuple[int, dict[str, object]]:
    """Send the rest of the body; the status code and JSON of the answer."""
    connection.sendall(body[len(body) // 2 :])
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    connection.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    document: dict[str, object] = json.loads(content)
    return status, document


def test_web_sigterm_answers_requests_in_flight(
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    dispatcher = make_dispatcher("rabbitmq")
    web = Web(dispatcher)
    processes.append(web)
    bodies = [json.dumps(fault_data.event(f"in-flight-{n}")).encode() for n in range(IN_FLIGHT)]
    connections = [_start_request(web.port, body) for body in bodies]

    web.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "Caught signal SIGTERM" in web.tail(), 30, "the web server to get SIGTERM")
    answers = [_finish_request(c, body) for c, body in zip(connections, bodies, strict=True)]

    assert [status for status, _ in answers] == [202] * IN_FLIGHT, answers
    assert web.process.wait(timeout=60) == 0
    assert not port_is_open(web.port), "no new connections after the shutdown"
    task_ids = [str(document["taskID"]) for _, document in answers]
    for task_id in task_ids:
        row = task_row(task_id)
        assert row.task_status is TaskStatus.ACCEPTED and row.queued_at is not None
    # the queued messages are there for a worker that starts later
    processes.append(Worker(dispatcher, "later"))
    tasks = wait_all_final(task_ids, 120, "after the web server stopped")
    assert {task.task_status for task in tasks} == {TaskStatus.OK}


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_worker_sigterm_finishes_the_running_model(
    broker: str,
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    dispatcher = make_dispatcher(broker)
    web = Web(dispatcher)
    worker = Worker(dispatcher, "warm")
    processes += [web, worker]
    worker.wait_ready()
    events = [fault_data.event(f"warm-{n}", (ModelConfig(runtime=3),)) for n in range(3)]
    task_ids = [accepted_id(post_event(web.url, event)) for event in events]
    running = wait_until(
        lambda: next((t for t in task_ids if model_runner_pids(t)), None), 60, "a model to run"
    )

    assert worker.terminate(timeout=120) == 0
    finished = task_row(running)
    assert finished.task_status is TaskStatus.OK, "the running model finished before the exit"
    waiting = [task_id for task_id in task_ids if task_id != running]
    assert all(task_row(t).task_status is TaskStatus.ACCEPTED for t in waiting), "not started"

    restarted = Worker(dispatcher, "restarted")
    processes.append(restarted)
    tasks = wait_all_final(task_ids, 120, "after the restart")
    assert {task.task_status for task in tasks} == {TaskStatus.OK}, restarted.tail()
    assert [task.attempts for task in tasks] == [1, 1, 1]
    assert len(dispatcher.result_folders()) == 3


def test_worker_cold_shutdown_reruns_the_killed_model(
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    dispatcher = make_dispatcher("rabbitmq")
    web = Web(dispatcher)
    worker = Worker(dispatcher, "cold")
    processes += [web, worker]
    worker.wait_ready()
    task_id = accepted_id(post_event(web.url, fault_data.event("cold", (ModelConfig(runtime=4),))))
    wait_until(lambda: model_runner_pids(task_id), 60, "the model to run")

    worker.process.send_signal(signal.SIGQUIT)  # Celery's cold shutdown: no waiting
    worker.process.wait(timeout=60)
    wait_until(lambda: not model_pids(task_id), 30, "the model to die with its worker")
    assert task_row(task_id).task_status is TaskStatus.PROCESSING
    assert dispatcher.result_folders() == []

    restarted = Worker(dispatcher, "after-cold")
    processes.append(restarted)
    (task,) = wait_all_final([task_id], 120, "after the restart")
    assert task.task_status is TaskStatus.OK, restarted.tail()
    assert task.attempts == 2
    assert len(dispatcher.result_folders()) == 1
