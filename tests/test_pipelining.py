"""The Redis transport whose batches are one pipeline, on the Redis under test; which broker
gets it (every setup)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from conftest import broker_url
from queued import drain_task_ids

from pacifica.dispatcher_proxymod.pipelining import REDIS_TRANSPORT, RedisChannel, batch
from pacifica.dispatcher_proxymod.queue import TASK_NAME, celery_config, create_celery_app
from pacifica.dispatcher_proxymod.settings import Settings

on_redis = pytest.mark.skipif(
    urlsplit(broker_url()).scheme != "redis", reason="needs TEST_BROKER_URL=redis://..."
)


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/3", REDIS_TRANSPORT),
        ("amqp://guest:guest@127.0.0.1:5672//", None),
        ("filesystem://", None),
        ("rediss://127.0.0.1:6380/3", None),  # kombu's own (its TLS defaults need the name)
    ],
)
def test_redis_brokers_get_the_pipelining_transport(
    settings: Settings, url: str, transport: str | None
) -> None:
    assert celery_config(settings.with_changes(broker_url=url))["broker_transport"] == transport


def _send(app: Any, producer: Any, task_id: str) -> None:
    app.send_task(TASK_NAME, args=[task_id], task_id=task_id, retry=False, producer=producer)


def _length(app: Any) -> int:
    client = redis.Redis.from_url(broker_url())
    try:
        length: int = client.llen(app.conf.task_default_queue)
        return length
    finally:
        client.close()


@on_redis
def test_a_batch_reaches_redis_when_it_ends(settings: Settings) -> None:
    app = create_celery_app(settings)
    drain_task_ids(app)
    with app.producer_or_acquire() as producer:
        assert isinstance(producer.channel, RedisChannel)
        _send(app, producer, "alone")
        assert _length(app) == 1, "outside a batch a message goes out at once"
        with batch(producer):
            for number in range(10):
                _send(app, producer, f"batched-{number}")
            with batch(producer):  # nested: part of the outer batch
                _send(app, producer, "nested")
            assert _length(app) == 1, "nothing sent before the batch ends"
        assert _length(app) == 12
    assert sorted(drain_task_ids(app)) == sorted(
        ["alone", "nested", *(f"batched-{n}" for n in range(10))]
    )


@on_redis
def test_every_batch_uses_the_channels_one_client(settings: Settings) -> None:
    app = create_celery_app(settings)
    drain_task_ids(app)
    clients = []
    with app.producer_or_acquire() as producer:
        for number in range(3):
            with batch(producer):
                _send(app, producer, f"batch-{number}")
            clients.append(producer.channel._batch_client)
    assert clients[0] is not None and all(client is clients[0] for client in clients)
    assert sorted(drain_task_ids(app)) == ["batch-0", "batch-1", "batch-2"]


@on_redis
def test_a_failing_batch_sends_nothing(settings: Settings) -> None:
    app = create_celery_app(settings)
    drain_task_ids(app)
    with app.producer_or_acquire() as producer:
        with pytest.raises(RuntimeError, match="midway"), batch(producer):
            _send(app, producer, "discarded")
            raise RuntimeError("midway")
        _send(app, producer, "after")  # the channel is back to sending at once
        assert _length(app) == 1
    assert drain_task_ids(app) == ["after"]


@on_redis
def test_batched_messages_are_kombus_own(settings: Settings) -> None:
    """The same task sent alone and in a batch: the same message on the queue (kombu built it,
    only the moment it was sent differs)."""
    app = create_celery_app(settings)
    drain_task_ids(app)
    with app.producer_or_acquire() as producer:
        _send(app, producer, "same")
        with batch(producer):
            _send(app, producer, "same")
    client = redis.Redis.from_url(broker_url())
    try:
        raw = client.lrange(app.conf.task_default_queue, 0, -1)
    finally:
        client.close()
    assert len(raw) == 2
    messages = [_comparable(item) for item in raw]
    assert messages[0] == messages[1]
    drain_task_ids(app)


def _comparable(raw: bytes) -> dict[str, Any]:
    """A queued message without what differs between two sends (its tag)."""
    message: dict[str, Any] = json.loads(raw)
    message["properties"].pop("delivery_tag")
    return message
