"""Publishing a batch of Celery messages in one round trip to the broker.

Kombu's Redis transport sends each message with an LPUSH of its own: one round trip per
message. :class:`RedisTransport` is that transport with one change: inside
:func:`batch` its channel queues the LPUSHes on one Redis pipeline (``MULTI`` ... ``EXEC``)
and sends them together when the batch ends. What a message is, its key and its priority
stay kombu's (its own ``Channel._put`` runs, only onto the pipeline), and so does everything
a worker does. :func:`queue.celery_config` names it as Celery's ``broker_transport`` for a
``redis://`` broker, so the web, the worker and the commands all use it.

On AMQP (py-amqp, no publisher confirms) a publish is written to the socket without waiting
for the broker, so a batch on one producer's channel costs no round trip beyond the writes;
the embedded filesystem broker writes one file per message. On both, :func:`batch` does
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Producer
from kombu.transport import redis

#: Celery's ``broker_transport`` for a ``redis://`` broker.
REDIS_TRANSPORT = f"{__name__}:RedisTransport"


class RedisChannel(redis.Channel):  # type: ignore[misc]
    """Kombu's Redis channel; inside :meth:`pipelined` its publishes share one pipeline."""

    #: The open batch's pipeline, if any.
    _batch: Any = None
    #: The client kombu's ``_put`` gets from ``conn_or_acquire`` while it writes into a batch.
    _put_into: Any = None
    #: The client whose pipelines the batches are (made once: a client per batch cost a
    #: tenth of the publisher's CPU)
    _batch_client: Any = None

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """Send every message published inside as one pipeline when the block ends: all of
        them in one round trip, in one transaction. An exception inside discards them all;
        one sending them (the broker is down) is raised with none of them applied."""
        if self._batch is not None:  # nested: the outer batch sends them
            yield
            return
        client = self._batch_client
        if client is None or client.connection_pool is not self.pool:  # (a new pool after errors)
            client = self._batch_client = self._create_client()
        pipeline = client.pipeline(transaction=True)
        self._batch = pipeline
        try:
            yield
        except BaseException:
            pipeline.reset()
            raise
        finally:
            self._batch = None
        try:
            pipeline.execute()
        finally:
            pipeline.reset()

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        if self._batch is None:
            super()._put(queue, message, **kwargs)
            return
        self._put_into = self._batch
        try:
            super()._put(queue, message, **kwargs)
        finally:
            self._put_into = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        with super().conn_or_acquire(client or self._put_into) as chosen:
            yield chosen


class RedisTransport(redis.Transport):  # type: ignore[misc]
    """Kombu's Redis transport with :class:`RedisChannel`."""

    Channel = RedisChannel


@contextmanager
def batch(producer: Producer) -> Iterator[None]:
    """Publish everything ``producer`` sends inside in as few round trips as its transport
    allows (one pipeline on Redis); a no-op on transports that need nothing for it."""
    pipelined = getattr(producer.channel, "pipelined", None)
    if pipelined is None:
        yield
        return
    with pipelined():
        yield
