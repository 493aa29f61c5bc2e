"""From the intake's commit to the broker: the web process's ``on_committed``.

The intake's writer hands each commit's new task ids to :meth:`Handoff.submit`, which passes
them to the :class:`~.publisher.BatchPublisher` (never blocking the writer) and notes each
id's ticket. The request that recorded a task then waits
(:meth:`Handoff.wait`, bounded by :data:`PUBLISH_WAIT_SECONDS`) until the publisher has dealt
with every id up to its own: published (its row was inserted marked queued), or left to
recovery (its mark taken back). So a 202 still means "recorded and queued" (README) while the
publishing is shared by every request waiting at that moment; past the bound (a broker that
hangs) the answer goes out anyway: the row is committed, and recovery publishes it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..publisher import BatchPublisher

#: The most seconds a request waits for its message to leave (then recovery's).
PUBLISH_WAIT_SECONDS = 2.0
#: The most ids whose place is remembered for a request that did not ask for it (yet).
REMEMBERED = 10_000


class Handoff:
    """``on_committed`` for the intake, and the wait of the request that recorded a task."""

    def __init__(self, publisher: BatchPublisher, wait_seconds: float = PUBLISH_WAIT_SECONDS):
        self.publisher = publisher
        self.wait_seconds = wait_seconds
        self._places: dict[str, int] = {}  # task id -> its publisher ticket
        self._noted = threading.Condition()

    def submit(self, task_ids: Iterable[str]) -> None:
        """Hand committed tasks' ids to the publisher (the intake's writer calls this)."""
        ids = list(task_ids)
        ticket = self.publisher.submit(ids)
        with self._noted:
            for task_id in ids:
                self._places[task_id] = ticket
            while len(self._places) > REMEMBERED:  # their requests stopped waiting
                del self._places[next(iter(self._places))]
            self._noted.notify_all()

    def wait(self, task_id: str) -> bool:
        """Wait until the publisher dealt with ``task_id``; False when the bound ran out."""
        with self._noted:  # the writer notes the ids just after it woke their requests
            if not self._noted.wait_for(lambda: task_id in self._places, self.wait_seconds):
                return False
            ticket = self._places.pop(task_id)
        return self.publisher.wait(ticket, self.wait_seconds)
