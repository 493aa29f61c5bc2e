"""The Celery side on the broker under test: publishing, recovery of unqueued tasks."""

from __future__ import annotations

import gc
import json
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery._state import _task_stack
from celery.utils.saferepr import saferepr
from peers import closing_peer
from queued import drain_task_ids
from test_e2e import start_worker, stop_worker

from pacifica.dispatcher_proxymod import queue, store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.queue import (
    QUEUE_NAME,
    TASK_NAME,
    broker_options,
    create_celery_app,
    publish,
    recover,
)
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus


def _record(example_event: dict[str, Any], event_id: str) -> str:
    body = json.dumps(dict(example_event, eventID=event_id)).encode()
    event = parse_http({"Content-Type": "application/json"}, body)
    return store.record_event(event, TaskStatus.ACCEPTED, route="proxymod").task.id


def test_the_queue_is_a_setting(settings: Settings) -> None:
    assert create_celery_app(settings).conf.task_default_queue == QUEUE_NAME
    app = create_celery_app(settings.with_changes(queue_name="site-b"))
    assert app.conf.task_default_queue == "site-b"
    assert [q.name for q in app.conf.task_queues] == ["site-b"]


def test_deployments_on_one_broker_keep_their_own_messages(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Path
) -> None:
    """A worker of deployment A (its queue, its store) leaves deployment B's message alone."""
    site_a = open_store.with_changes(queue_name=f"site-a-{uuid.uuid4().hex[:8]}")
    site_b = open_store.with_changes(queue_name=f"site-b-{uuid.uuid4().hex[:8]}")
    app_a, app_b = create_celery_app(site_a), create_celery_app(site_b)
    ours = _record(example_event, "site-a")
    theirs = _record(example_event, "site-b")
    assert publish(app_b, theirs) and publish(app_a, ours)
    worker = start_worker(site_a, tmp_path / "worker-a.log")
    try:
        deadline = time.monotonic() + 240
        while (task := store.get_task(ours)) is not None and not task.task_status.final:
            assert time.monotonic() < deadline, (tmp_path / "worker-a.log").read_text()[-3000:]
            time.sleep(0.3)
        assert task is not None and task.status == TaskStatus.OK.value
    finally:
        stop_worker(worker)
    untouched = store.get_task(theirs)
    assert untouched is not None and untouched.status == TaskStatus.ACCEPTED.value
    assert untouched.attempts == 0
    assert drain_task_ids(app_b) == [theirs], "B's message is still on B's queue"
    assert drain_task_ids(app_a) == []


def test_app_is_configured_for_at_least_once(settings: Settings) -> None:
    app = create_celery_app(settings)
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert TASK_NAME in app.tasks


def test_lazy_app_reads_settings_on_first_use(monkeypatch: Any, settings: Settings) -> None:
    monkeypatch.setenv("BROKER_URL", "memory://lazy")
    app = create_celery_app()
    assert app.conf.broker_url == "memory://lazy"


def test_embedded_broker_folders(settings: Settings) -> None:
    settings = settings.with_changes(broker_url="filesystem://")
    options = broker_options(settings)
    assert options["data_folder_in"] == options["data_folder_out"]
    assert (settings.broker_dir / "queue").is_dir()


def test_publish_and_recover(open_store: Settings, example_event: dict[str, Any]) -> None:
    app = create_celery_app(open_store)
    drain_task_ids(app)
    queued = _record(example_event, "queued")
    lost = _record(example_event, "lost")
    assert publish(app, queued)
    assert drain_task_ids(app) == [queued]
    task = store.get_task(queued)
    assert task is not None and task.queued_at is not None
    # "lost" never reached the broker; after the grace period recovery sends it
    with store.connection():
        old = store.utcnow().replace(year=2000)
        store.Task.update(created=old).where(store.Task.id == lost).execute()
    assert recover(app, open_store) == 1
    assert drain_task_ids(app) == [lost]


def test_publish_fails_softly_when_the_broker_is_down(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    down = open_store.with_changes(broker_url="redis://127.0.0.1:1/0")
    task_id = _record(example_event, "down")
    assert publish(create_celery_app(down), task_id) is False
    task = store.get_task(task_id)
    assert task is not None and task.queued_at is None and task.status == "202 Accepted"


def test_a_failed_publish_pauses_publishing_to_that_broker(
    open_store: Settings, example_event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with closing_peer() as listener:
        broken = open_store.with_changes(broker_url=f"redis://127.0.0.1:{listener.port}/0")
        app = create_celery_app(broken)
        assert publish(app, _record(example_event, "first")) is False
        tried = listener.connections
        assert tried >= 1
        started = time.monotonic()
        assert publish(app, _record(example_event, "second")) is False
        assert listener.connections == tried, "the broker failed moments ago: not tried again"
        assert time.monotonic() - started < 1
        # once the pause is over, the broker is tried again
        monkeypatch.setattr(queue, "PUBLISH_PAUSE_SECONDS", 0.0)
        queue._paused_until.pop(app, None)
        assert publish(app, _record(example_event, "third")) is False
        assert listener.connections > tried
    # the pause belongs to that app (its broker), not to others
    working = create_celery_app(open_store)
    drain_task_ids(working)
    fourth = _record(example_event, "fourth")
    assert publish(working, fourth)
    assert drain_task_ids(working) == [fourth]


#: Task ids whose ``argsrepr`` takes each of ``saferepr``'s paths: plain, a quote escaped, text
#: it leaves as is, and lengths around where it starts to cut (its limit is 1024).
ODD_IDS = [
    str(uuid.uuid4()),
    "it's",
    'back\\slash "double" new\nline tab\t',
    "ünïcødé ✓",
    *("x" * length for length in (511, 512, 513, 1019, 1020, 1021, 1022, 1023, 1024, 1025)),
    "word " * 300,
]


@contextmanager
def _recorded_sends(app: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Record what ``app.amqp.send_task_message`` is given (nothing is published)."""
    sends: list[tuple[Any, ...]] = []

    def record(producer: Any, name: str, message: Any, **options: Any) -> None:
        sends.append((producer, name, message, options))

    original = app.amqp.send_task_message
    app.amqp.send_task_message = record
    try:
        yield sends
    finally:
        app.amqp.send_task_message = original


def _celery_and_ours(app: Any, task_ids: list[str]) -> tuple[list[Any], list[Any]]:
    """What ``send_task`` (as publish_many called it before) and :func:`queue.send_messages`
    hand to ``send_task_message`` for ``task_ids``."""
    with app.producer_or_acquire() as producer, _recorded_sends(app) as sends:
        for task_id in task_ids:
            app.send_task(
                TASK_NAME,
                args=[task_id],
                task_id=task_id,
                retry=False,
                producer=producer,
                declare=[],
            )
        celery = list(sends)
        sends.clear()
        queue.send_messages(app, producer, task_ids)
        ours = list(sends)
    for sent in celery + ours:
        assert sent[0] is producer
    return celery, ours


def test_send_messages_hands_celery_what_send_task_does(settings: Settings) -> None:
    """Every argument of ``send_task_message`` (the message's headers, properties, body and
    sent event; exchange, queue, retry, declare) the same as ``send_task``'s: this fails when
    a Celery release changes what ``send_task`` does (queue.send_messages relies on it)."""
    app = create_celery_app(settings.with_changes(broker_url="memory://"))
    celery, ours = _celery_and_ours(app, ODD_IDS)
    assert len(ours) == len(ODD_IDS)
    assert ours == celery
    assert [sent[2].headers["id"] for sent in ours] == ODD_IDS
    assert [sent[2].headers["argsrepr"] for sent in ours] == [
        saferepr([task_id], app.amqp.argsrepr_maxsize) for task_id in ODD_IDS
    ]
    lists = [sent[3]["declare"] for sent in ours]
    assert len({id(declare) for declare in lists}) == len(lists), "kombu may append to it"


def test_send_messages_inside_a_task_and_with_sent_events(settings: Settings) -> None:
    """Inside a worker's task (its ids and priority inherited) and with task-sent events on:
    still what ``send_task`` hands over."""
    app = create_celery_app(settings.with_changes(broker_url="memory://"))
    app.conf.task_send_sent_event = True
    app.conf.task_inherit_parent_priority = True
    task = app.tasks[TASK_NAME]
    task.push_request(
        id="parent-id", root_id="root-id", called_directly=False, delivery_info={"priority": 3}
    )
    _task_stack.push(task)
    try:
        assert app.current_worker_task is task
        celery, ours = _celery_and_ours(app, ODD_IDS[:3])
    finally:
        _task_stack.pop()
        task.pop_request()
    assert ours == celery
    headers, options = ours[0][2].headers, ours[0][3]
    assert (headers["root_id"], headers["parent_id"], options["priority"]) == (
        "root-id",
        "parent-id",
        3,
    )
    assert ours[0][2].sent_event["uuid"] == ODD_IDS[0]


def test_a_channel_binds_the_queue_once(settings: Settings) -> None:
    """publish_many declares the queue bound to the producer's channel, bound once (kombu's
    ``maybe_declare`` binds an unbound queue again on every call)."""
    app = create_celery_app(settings.with_changes(broker_url="memory://"))
    with app.producer_or_acquire() as producer:
        bound = queue._bound_queue(app, producer)
        assert bound.is_bound and bound.channel is producer.channel
        assert bound == app.amqp.queues[app.conf.task_default_queue]
        assert queue._bound_queue(app, producer) is bound
        producer.revive(producer.connection.channel())  # a new channel: bound anew
        again = queue._bound_queue(app, producer)
        assert again is not bound and again.channel is producer.channel
    with app.connection_for_write() as connection:
        passing = app.amqp.Producer(connection)
        queue._bound_queue(app, passing)
        assert passing in queue._bound_queues
        gone = weakref.ref(passing)
        del passing
        gc.collect()
        assert gone() is None, "the entry keeps no producer alive"
