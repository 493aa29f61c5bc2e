"""RabbitMQ stops reading from the web's connection mid-batch (a memory alarm blocks publishers).

The web's publish timeout ends the batch with half a frame on the socket. Were that connection
used again, the broker would close it on reading the torn frame once the alarm clears, and every
message written after it would be lost although its publish returned as sent (its row marked
queued, so recovery would wait ``DISPATCHER_REQUEUE_AFTER``). py-amqp marks a connection whose
write timed out as no longer connected (``ETIMEDOUT``), so kombu connects afresh for the next
batch: this test holds that to be so on the real broker.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from queued import drain_task_ids

from pacifica.dispatcher_proxymod import queue
from pacifica.dispatcher_proxymod.queue import QUEUE_NAME, create_celery_app, publish_many
from pacifica.dispatcher_proxymod.settings import Settings

from .services import PrivateRabbitMQ, wait_until

pytestmark = pytest.mark.fault

#: Enough messages (about 1 KiB each) to fill both sockets' buffers while the broker reads nothing.
BLOCKED_BATCH = 20_000
AFTER = 10


def test_a_batch_after_a_blocked_one_reaches_the_broker(
    rabbitmq: PrivateRabbitMQ, tmp_path: Path
) -> None:
    rabbitmq.reset(QUEUE_NAME)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/unused.sqlite3", broker_url=rabbitmq.url
    )
    app = create_celery_app(settings, publish_timeout=1.0)
    assert publish_many(app, ["warm-up"], mark=False), "connected, queue declared"
    rabbitmq.ctl("set_vm_memory_high_watermark", "0")  # every publishing connection blocked
    try:
        wait_until(
            lambda: "memory" in rabbitmq.ctl("eval", "rabbit_alarm:get_alarms()."),
            30,
            "the node's memory alarm",
            every=0.5,
        )
        started = time.monotonic()
        blocked = [f"blocked-{n}" for n in range(BLOCKED_BATCH)]
        assert not publish_many(app, blocked, mark=False), "the write timed out"
        assert time.monotonic() - started < 30
    finally:
        rabbitmq.ctl("set_vm_memory_high_watermark", "0.4")
    time.sleep(queue.PUBLISH_PAUSE_SECONDS + 0.5)  # the pause after a failure
    after = [f"after-{n}" for n in range(AFTER)]
    assert publish_many(app, after, mark=False)
    seen = set(drain_task_ids(app))
    assert set(after) <= seen, f"{len(set(after) - seen)} of {AFTER} sent messages lost"
    assert "warm-up" in seen
