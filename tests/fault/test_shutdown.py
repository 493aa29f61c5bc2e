"""Graceful shutdown (SIGTERM) of the web server and the worker: nothing in flight is lost.

The web server answers the requests it is reading when SIGTERM comes. The worker's warm
shutdown lets a running model finish and leaves waiting tasks in the broker; a cold shutdown
(SIGQUIT) kills the running model, and that task is run again after a restart.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.states import TaskStatus

from .harness import (
    Dispatcher,
    FaultData,
    ModelConfig,
    Web,
    Worker,
    accepted_id,
    all_completed_by_new_worker,
    model_pids,
    model_runner_pids,
    post_event,
    recorded_ids,
    task_row,
)
from .services import port_is_open, wait_until

pytestmark = pytest.mark.fault

IN_FLIGHT = 3
RACING = 12


def _start_request(port: int, body: bytes, part: float = 0.5) -> socket.socket:
    """Open a POST /receive and send its headers and ``part`` of its body."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        "POST /receive HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    connection.sendall(head + body[: int(len(body) * part)])
    return connection


def _finish_request(
    connection: socket.socket, body: bytes, part: float = 0.5
) -> tuple[int, dict[str, object]] | None:
    """Send the rest of the body; the status code and JSON of the answer (None: closed
    without an answer)."""
    with connection:
        answer = b""
        try:
            connection.sendall(body[int(len(body) * part) :])
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionError:
            return None
    if not answer:
        return None
    head, _, content = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    document: dict[str, object] = json.loads(content)
    return status, document


def _unread_bytes(server_port: int, client_port: int) -> int | None:
    """Bytes the server has not read yet on the connection from ``client_port`` (from
    /proc/net/tcp; None when there is no such connection)."""
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            return int(fields[4].split(":")[1], 16)
    return None


def _all_read(server_port: int, client_port: int) -> bool:
    return _unread_bytes(server_port, client_port) == 0


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
    # in flight: a server thread has read the headers and half the body and waits for the rest
    for connection in connections:
        client_port: int = connection.getsockname()[1]
        wait_until(
            partial(_all_read, web.port, client_port),
            30,
            "the server to read the request's first half",
        )

    web.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "Caught signal SIGTERM" in web.tail(), 30, "the web server to get SIGTERM")
    answers = [_finish_request(c, body) for c, body in zip(connections, bodies, strict=True)]
    assert all(answer is not None and answer[0] == 202 for answer in answers), answers
    assert web.process.wait(timeout=60) == 0
    assert not port_is_open(web.port), "no new connections after the shutdown"
    task_ids = [str(answer[1]["taskID"]) for answer in answers if answer is not None]
    for task_id in task_ids:
        row = task_row(task_id)
        assert row.task_status is TaskStatus.ACCEPTED and row.queued_at is not None
    # the queued messages are there for a worker that starts later
    all_completed_by_new_worker(dispatcher, processes, "later", task_ids)


def test_web_sigterm_never_loses_an_answered_event(
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    """Requests racing with SIGTERM: each is answered 202 and recorded, or gets no answer and
    is not recorded (so the sender's retry is safe); none is recorded but unanswered."""
    dispatcher = make_dispatcher("rabbitmq")
    web = Web(dispatcher)
    processes.append(web)
    bodies = [json.dumps(fault_data.event(f"racing-{n}")).encode() for n in range(RACING)]
    answers: dict[int, tuple[int, dict[str, object]] | None] = {}

    def send(number: int) -> None:
        try:
            connection = _start_request(web.port, bodies[number], part=1.0)
        except ConnectionError:
            answers[number] = None
            return
        answers[number] = _finish_request(connection, bodies[number], part=1.0)

    senders = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(RACING)]
    for number, sender in enumerate(senders):
        sender.start()
        if number == RACING // 2:
            web.process.send_signal(signal.SIGTERM)
    for sender in senders:
        sender.join(timeout=60)
    assert web.process.wait(timeout=60) == 0
    with store.connection():
        recorded = {row.event_id for row in store.Task.select(store.Task.event_id)}
    for number in range(RACING):
        answer, event_id = answers.get(number), f"racing-{number}"
        if answer is None:
            assert event_id not in recorded, f"{event_id} recorded but not answered"
        else:
            assert answer[0] == 202 and event_id in recorded, (event_id, answer)
    # every recorded event is run by a worker started after the web server stopped
    all_completed_by_new_worker(dispatcher, processes, "after-sigterm", recorded_ids())


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

    tasks = all_completed_by_new_worker(dispatcher, processes, "restarted", task_ids)
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

    (task,) = all_completed_by_new_worker(dispatcher, processes, "after-cold", [task_id])
    assert task.attempts == 2
    assert len(dispatcher.result_folders()) == 1
