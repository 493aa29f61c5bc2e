"""Publishing in batches on the broker under test: the worker runs what a batch sent, a batch is
one round trip, premarked rows cost no UPDATE (others one), and what a dead or hanging broker
could not take is recovery's within the web's publish timeout."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import amqp
import pytest
import redis.connection
from conftest import broker_url
from peers import SilentPeer
from queued import drain_messages, drain_task_ids
from test_e2e import start_worker, stop_worker
from test_queue import _record

from pacifica.dispatcher_proxymod import queue, store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.publisher import CommitPublisher
from pacifica.dispatcher_proxymod.queue import RecoveryLoop, create_celery_app, publish_many
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus

SCHEME = urlsplit(broker_url()).scheme


def _tasks(example_event: dict[str, Any], prefix: str, count: int) -> list[str]:
    return [_record(example_event, f"{prefix}-{number}") for number in range(count)]


def _premarked(example_event: dict[str, Any], prefix: str, count: int) -> list[str]:
    """Rows as the web's intake writes them: inserted with ``queued_at`` set."""
    task_ids = []
    for number in range(count):
        body = json.dumps(dict(example_event, eventID=f"{prefix}-{number}")).encode()
        event = parse_http({"Content-Type": "application/json"}, body)
        row = store.new_task(event, TaskStatus.ACCEPTED, route="proxymod", queued=True)
        with store.connection():
            store.Task.create(**row.columns())
        task_ids.append(row.id)
    return task_ids


def _queued_at(task_ids: list[str]) -> list[Any]:
    with store.connection():
        rows = store.Task.select(store.Task.id, store.Task.queued_at)
        found = {row.id: row.queued_at for row in rows.where(store.Task.id.in_(task_ids))}
    return [found[task_id] for task_id in task_ids]


def _closed_port() -> int:
    """A port nothing listens on (taken from the system, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _down(settings: Settings, port: int) -> Settings:
    """The broker under test's kind of URL, on a port where no broker answers (the embedded
    broker cannot be down: Redis's URL stands in for it)."""
    if SCHEME == "amqp":
        return settings.with_changes(broker_url=f"amqp://guest:guest@127.0.0.1:{port}//")
    return settings.with_changes(broker_url=f"redis://127.0.0.1:{port}/0")


def _wait(condition: Any, timeout: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_batch_becomes_messages_the_worker_runs(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Any
) -> None:
    app = create_celery_app(open_store)
    drain_task_ids(app)
    task_ids = _premarked(example_event, "batch", 5)
    publisher = CommitPublisher(app)
    assert publisher(task_ids)
    assert (publisher.batches, publisher.published, publisher.left_to_recovery) == (1, 5, 0)
    assert all(_queued_at(task_ids)), "marked in the INSERT, still marked"
    log = tmp_path / "worker.log"
    worker = start_worker(open_store, log, concurrency=2)
    try:
        finished = lambda: all(  # noqa: E731
            (task := store.get_task(task_id)) is not None and task.task_status.final
            for task_id in task_ids
        )
        _wait(finished, 300, f"the batch's tasks ending ({log})")
    finally:
        stop_worker(worker)
    for task_id in task_ids:
        task = store.get_task(task_id)
        assert task is not None and task.status == TaskStatus.OK.value, log.read_text()[-3000:]
        assert task.attempts == 1


def test_queued_at_is_set_by_one_update(
    open_store: Settings, example_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Rows not marked in their INSERT (retry, recovery): one UPDATE marks the batch."""
    app = create_celery_app(open_store)
    drain_task_ids(app)
    task_ids = _tasks(example_event, "marked", 20)
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        assert publish_many(app, task_ids)
    statements = _statements(caplog)
    updates = [sql for sql in statements if sql.lstrip("('\"").startswith("UPDATE")]
    assert len(updates) == 1, statements
    assert "queued_at" in updates[0]
    stamps = _queued_at(task_ids)
    assert stamps[0] is not None and set(stamps) == {stamps[0]}
    assert sorted(drain_task_ids(app)) == sorted(task_ids)


def _statements(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The SQL statements peewee logged while ``caplog`` listened to it."""
    return [str(record.msg) for record in caplog.records if record.name == "peewee"]


@contextmanager
def _counting(cls: Any, name: str) -> Iterator[list[int]]:
    """Count the calls of ``cls.name`` (the real method still runs)."""
    calls = [0]
    original = getattr(cls, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(cls, name, counted)
    try:
        yield calls
    finally:
        setattr(cls, name, original)


@pytest.mark.skipif(SCHEME != "redis", reason="Redis round trips (TEST_BROKER_URL=redis://...)")
def test_a_batch_is_one_redis_round_trip(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """redis-py writes a command (or a pipeline) and then reads its replies: each write is a
    round trip. Fifty messages one by one take fifty; as one batch, one."""
    app = create_celery_app(open_store)
    drain_task_ids(app)
    assert publish_many(app, _tasks(example_event, "warm", 1))  # connected, queue declared
    singles, batched = _tasks(example_event, "single", 50), _tasks(example_event, "many", 50)
    with _counting(redis.connection.AbstractConnection, "send_packed_command") as writes:
        for task_id in singles:
            assert queue.publish(app, task_id)
    assert writes[0] == 50
    with _counting(redis.connection.AbstractConnection, "send_packed_command") as writes:
        assert publish_many(app, batched)
    assert writes[0] == 1
    assert len(drain_task_ids(app)) == 101


@pytest.mark.skipif(SCHEME != "amqp", reason="AMQP round trips (TEST_BROKER_URL=amqp://...)")
def test_a_batch_waits_for_no_amqp_frame(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """py-amqp writes each publish without waiting for the broker: a batch of fifty reads no
    frame from it (no round trip) and writes fifty, all on the one connection it holds."""
    app = create_celery_app(open_store)
    drain_task_ids(app)
    assert publish_many(app, _tasks(example_event, "warm", 1))  # connected, queue declared
    with app.producer_or_acquire() as producer:  # the pool hands the same one out next
        connection: amqp.Connection = producer.connection.connection
    sent, received = connection.bytes_sent, connection.bytes_recv
    assert publish_many(app, _tasks(example_event, "many", 50))
    assert (connection.bytes_sent - sent, connection.bytes_recv - received) == (50, 0)
    assert len(drain_task_ids(app)) == 51


def test_a_batch_sends_the_message_celery_sends(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """The same task sent by a plain ``send_task`` and in a batch: the same message as the
    broker delivers it, byte for byte (only the transport's own delivery tag differs)."""
    app = create_celery_app(open_store)
    drain_task_ids(app)
    task_id = _record(example_event, "same")
    app.send_task(queue.TASK_NAME, args=[task_id], task_id=task_id)
    assert publish_many(app, [task_id, task_id])
    plain, *batched = drain_messages(app)
    assert len(batched) == 2

    def comparable(message: Any) -> tuple[Any, ...]:
        properties = {k: v for k, v in message.properties.items() if k != "delivery_tag"}
        info = {k: v for k, v in message.delivery_info.items() if k != "delivery_tag"}
        return (
            type(message),
            message.headers,
            message.body,
            message.content_type,
            message.content_encoding,
            properties,
            info,
        )

    assert comparable(batched[0]) == comparable(plain) == comparable(batched[1])
    assert plain.headers["id"] == task_id and plain.decode()[0] == [task_id]
    assert plain.delivery_info["routing_key"] == app.conf.task_default_queue


def test_a_dead_broker_leaves_the_batch_to_recovery(
    open_store: Settings, example_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on the broker's port: each batch's rows lose their mark before the call
    returns (so before their requests are answered), the failure is logged once, the next batch
    is not tried during the pause, and recovery queues them all."""
    dead = create_celery_app(_down(open_store, _closed_port()))
    first, second = _premarked(example_event, "down", 3), _premarked(example_event, "paused", 2)
    publisher = CommitPublisher(dead)
    with caplog.at_level(logging.WARNING, logger=queue.__name__):
        assert not publisher(first)
        assert _queued_at(first) == [None] * 3, "taken back before the caller is told"
        started = time.monotonic()
        assert not publisher(second)
        assert time.monotonic() - started < 1.0, "the paused broker was tried again"
    assert (publisher.published, publisher.left_to_recovery) == (0, 5)
    assert _queued_at(first + second) == [None] * 5
    assert store.needing_requeue(600, 600, grace=0) == first + second
    failures = [r for r in caplog.records if r.name == queue.__name__]
    assert len(failures) == 1 and "could not queue 3 tasks" in failures[0].getMessage()
    # the workers' recovery loop (every second here) finds them after the 5 s grace
    app = create_celery_app(open_store)
    drain_task_ids(app)
    loop = RecoveryLoop(app, open_store)
    loop.start()
    try:
        _wait(lambda: all(_queued_at(first + second)), 30, "recovery queueing them")
    finally:
        loop.stop()
    assert sorted(drain_task_ids(app)) == sorted(first + second)


def test_recover_sends_its_list_as_one_batch(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    app = create_celery_app(open_store)
    drain_task_ids(app)
    lost = _tasks(example_event, "lost", 4)
    with store.connection():
        old = store.utcnow().replace(year=2000)
        store.Task.update(created=old).where(store.Task.id.in_(lost)).execute()
    assert queue.recover(app, open_store) == 4
    stamps = _queued_at(lost)
    assert stamps[0] is not None and set(stamps) == {stamps[0]}, "one UPDATE"
    assert sorted(drain_task_ids(app)) == sorted(lost)
    assert queue.recover(app, open_store) == 0


def test_a_hanging_broker_holds_a_batch_for_the_publish_timeout_only(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """A broker that accepts connections and never answers: the web's publish timeout ends
    the batch (its rows recovery's), and the next batch in the pause is not held at all."""
    listener = SilentPeer()
    try:
        stuck = create_celery_app(_down(open_store, listener.port), publish_timeout=0.5)
        publisher = CommitPublisher(stuck)
        first, second = _premarked(example_event, "hung", 2), _premarked(example_event, "next", 1)
        started = time.monotonic()
        assert not publisher(first)
        held = time.monotonic() - started
        assert listener.accepted, "it did connect"
        assert held < 2.5, f"a hanging broker held the batch for {held:.1f} s"
        started = time.monotonic()
        assert not publisher(second)
        assert time.monotonic() - started < 0.5, "the next batch waited for the broker"
    finally:
        listener.close()
    assert _queued_at(first + second) == [None] * 3
    assert publisher.left_to_recovery == 3


def test_a_refused_broker_fails_the_batch_at_once(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """Nothing listens: the web's app tries to connect once (no retry after kombu's 2 s)."""
    refused = create_celery_app(_down(open_store, _closed_port()), publish_timeout=0.5)
    task_ids = _premarked(example_event, "refused", 2)
    started = time.monotonic()
    assert not CommitPublisher(refused)(task_ids)
    assert time.monotonic() - started < 1.5, "it waited to try again"
    assert _queued_at(task_ids) == [None] * 2


def test_the_web_publish_timeout_bounds_every_step(open_store: Settings) -> None:
    """What the web's app is given: the connect and each socket read and write bounded by
    its publish timeout; the worker's app keeps the longer defaults."""
    for url, options in (
        (
            "redis://127.0.0.1:6379/0",
            {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "max_retries": 0},
        ),
        (
            "amqp://guest:guest@127.0.0.1:5672//",
            {"read_timeout": 0.5, "write_timeout": 0.5, "max_retries": 0},
        ),
    ):
        settings = open_store.with_changes(broker_url=url)
        web = create_celery_app(settings, publish_timeout=0.5).conf
        assert web.broker_connection_timeout == 0.5
        assert options.items() <= web.broker_transport_options.items()
        worker = create_celery_app(settings).conf
        assert worker.broker_connection_timeout == queue.CONNECT_TIMEOUT_SECONDS
        assert not {"read_timeout", "write_timeout", "max_retries"} & (
            worker.broker_transport_options.keys()
        )
        if url.startswith("redis"):
            timeout = worker.broker_transport_options["socket_timeout"]
            assert timeout == queue.REDIS_SOCKET_TIMEOUT_SECONDS


def test_premarked_rows_are_published_without_an_update(
    open_store: Settings, example_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_celery_app(open_store)
    drain_task_ids(app)
    task_ids = _premarked(example_event, "premarked", 6)
    stamps = _queued_at(task_ids)
    assert all(stamps), "marked in the INSERT"
    publisher = CommitPublisher(app)
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        assert publisher(task_ids)
    statements = _statements(caplog)
    assert not statements, "a batch sent costs the database nothing"
    assert (publisher.published, publisher.left_to_recovery) == (6, 0)
    assert _queued_at(task_ids) == stamps
    assert sorted(drain_task_ids(app)) == sorted(task_ids)


def test_a_web_start_republishes_what_was_marked_and_never_started(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """A web process died between its commit and its publish: the rows look queued."""
    app = create_celery_app(open_store)
    drain_task_ids(app)
    orphans = _premarked(example_event, "orphan", 3)
    started, old = _premarked(example_event, "started", 1), _premarked(example_event, "old", 1)
    with store.connection():
        store.Task.update(status=TaskStatus.PROCESSING.value).where(
            store.Task.id.in_(started)
        ).execute()
        long_ago = store.utcnow().replace(year=2000)
        store.Task.update(queued_at=long_ago).where(store.Task.id.in_(old)).execute()
    publisher = CommitPublisher(app)
    assert publisher.republish_recent(600) == 3
    assert (publisher.batches, publisher.published) == (1, 3)
    assert sorted(drain_task_ids(app)) == sorted(orphans), "the started and the old ones are not"
    assert all(_queued_at(orphans))
