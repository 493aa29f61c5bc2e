"""What the service left on its broker queue, read the way a worker would take it."""

from __future__ import annotations

from typing import Any


def drain_messages(app: Any) -> list[Any]:
    """Take every message off ``app``'s queue and acknowledge it; the messages, in order."""
    messages = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(app.conf.task_default_queue)
        try:
            while True:
                try:
                    message = queue.get(timeout=1)
                except queue.Empty:
                    break
                message.ack()
                messages.append(message)
        finally:
            queue.close()
    return messages


def drain_task_ids(app: Any) -> list[str]:
    """Take every message off ``app``'s queue; the task ids they carry."""
    return [message.headers["id"] for message in drain_messages(app)]
