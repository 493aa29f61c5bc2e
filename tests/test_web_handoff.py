"""web/handoff.py: a request waits until the publisher dealt with its task (real publisher,
the broker under test, the store under test)."""

from __future__ import annotations

import json
import threading
from typing import Any

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.publisher import BatchPublisher
from pacifica.dispatcher_proxymod.queue import create_celery_app
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.web.handoff import Handoff


def _recorded(example_event: dict[str, Any], event_id: str) -> str:
    body = dict(example_event, eventID=event_id)
    event = parse_http({"Content-Type": "application/json"}, json.dumps(body).encode())
    return store.record_event(event, TaskStatus.ACCEPTED, route="proxymod").task.id


def test_the_wait_ends_once_the_message_is_out(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    publisher = BatchPublisher(create_celery_app(open_store))
    handoff = Handoff(publisher, wait_seconds=30)
    try:
        ids = [_recorded(example_event, f"handoff-{n}") for n in range(3)]
        # the writer notes the ids only after it woke their requests: the wait comes first
        waits: dict[str, bool] = {}
        threads = [
            threading.Thread(target=lambda i=i: waits.__setitem__(i, handoff.wait(i))) for i in ids
        ]
        for thread in threads:
            thread.start()
        handoff.submit(ids)
        for thread in threads:
            thread.join(60)
        assert waits == dict.fromkeys(ids, True)
        for task_id in ids:
            task = store.get_task(task_id)
            assert task is not None and task.queued_at is not None
    finally:
        publisher.close(30)


def test_the_wait_is_bounded(open_store: Settings) -> None:
    publisher = BatchPublisher(create_celery_app(open_store))
    try:
        assert Handoff(publisher, wait_seconds=0.2).wait("never-handed-over") is False
    finally:
        publisher.close(30)
