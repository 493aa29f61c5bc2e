"""Publishing the messages of newly committed tasks in batches, off the request path.

The store's writer hands each committed batch's task ids to :meth:`BatchPublisher.submit`,
which only appends them to a list. One thread of the publisher's own takes everything waiting
(up to ``batch_limit`` ids) and sends it with :func:`queue.publish_many`: Celery's own messages
through one producer, in one round trip on Redis (one pipeline) and without waiting on AMQP,
then one UPDATE marks them queued. While it publishes, the next ids gather, so the batches
grow with the load and a lone task goes out at once. ``submit`` returns a ticket; whoever needs
to know that a task's message left (the web's answer) waits on it with :meth:`BatchPublisher.wait`.

A batch that cannot be published is left to recovery: its rows keep ``queued_at`` NULL, which
:func:`store.needing_requeue` finds 5 s after they were created, and the workers' recovery
pass (:func:`queue.recover`) re-publishes them. So does every id that finds the list full or
the publisher closed. The failure is logged once for each pause (``queue.PUBLISH_PAUSE_SECONDS``)
in which the broker is not tried again.

``premarked=True`` (the web's intake) is for rows inserted with ``queued_at`` set already
(``store.new_task(queued=True)``): a batch sent needs no UPDATE at all, and the rows of a batch
that could not be sent get their mark taken back (:func:`store.clear_queued_many`), one UPDATE,
before anyone waiting on them is told. A process that dies between a commit and its publish
leaves rows that look queued: the next web start re-publishes what was queued in the last
``DISPATCHER_REQUEUE_AFTER`` seconds (:meth:`BatchPublisher.republish_recent`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from celery import Celery

from . import queue, store

log = logging.getLogger(__name__)

#: The most messages one batch sends (one Redis pipeline, one UPDATE ... IN).
BATCH_LIMIT = 256
#: The most ids waiting; beyond it (the broker far slower than the intake) ids are left to
#: recovery instead of growing the list without bound.
PENDING_LIMIT = 20_000


class BatchPublisher:
    """Publishes submitted task ids in batches from a daemon thread; see the module."""

    def __init__(
        self,
        app: Celery,
        batch_limit: int = BATCH_LIMIT,
        pending_limit: int = PENDING_LIMIT,
        premarked: bool = False,
    ) -> None:
        if batch_limit < 1 or pending_limit < 1:
            raise ValueError(f"limits must be positive: {batch_limit=}, {pending_limit=}")
        self.app = app
        self.premarked = premarked
        self.batch_limit = batch_limit
        self.pending_limit = pending_limit
        #: Batches sent, messages sent, ids left to recovery (for tests and figures).
        self.batches = 0
        self.published = 0
        self.left_to_recovery = 0
        self._pending: list[str] = []
        #: premarked ids left to recovery whose mark is still to be taken back
        self._unpublished: list[str] = []
        #: ids taken into the list so far, and of them those whose batch ended (tickets)
        self._taken = 0
        self._finished = 0
        #: the requests waiting on a ticket, each released once its ticket has finished (a lock
        #: each, so a batch's end wakes its own requests only, not everyone waiting)
        self._waiters: list[tuple[int, threading.Lock]] = []
        self._closing = False
        self._busy = False
        self._failing = False
        self._refusing = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="dispatcher-publisher", daemon=True)
        self._thread.start()

    def submit(self, task_ids: Iterable[str]) -> int:
        """Queue the tasks' messages for the next batch; never blocks on the broker.

        Returns a ticket for :meth:`wait`: the number of ids taken so far, these included
        (ids are published in the order they were submitted).
        """
        ids = list(task_ids)
        with self._wake:
            room = 0 if self._closing else self.pending_limit - len(self._pending)
            taken = ids[: max(room, 0)]
            self._pending.extend(taken)
            self._taken += len(taken)
            ticket = self._taken
            if taken:
                self._wake.notify_all()
        if len(taken) < len(ids):
            self._leave(ids[len(taken) :])
        else:
            self._refusing = False
        return ticket

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait until every id submitted up to ``ticket`` (from :meth:`submit`) was published
        (and marked queued), or left to recovery; whether that happened within ``timeout``."""
        with self._wake:
            if self._finished >= ticket:
                return True
            released = threading.Lock()
            released.acquire()
            waiter = (ticket, released)
            self._waiters.append(waiter)
        if released.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return True
        with self._wake:  # given up: forget it (its batch may have ended meanwhile)
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            return self._finished >= ticket

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every id submitted so far was published or left to recovery; whether it
        was within ``timeout``."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Publish what is pending, then stop the thread (ids submitted later are left to
        recovery)."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout)

    def republish_recent(self, seconds: float) -> int:
        """Submit every task marked queued in the last ``seconds`` that no worker started
        (:func:`store.queued_within`): at a web start, the rows a process that died between
        a commit and its publish left looking queued. How many were submitted (0 when the
        store cannot say now: the workers' recovery finds them after ``seconds``)."""
        try:
            task_ids = store.queued_within(seconds)
        except Exception:
            log.exception("could not look for tasks to re-publish")
            return 0
        if task_ids:
            log.info(
                "re-publishing %d task(s) queued in the last %g s and not started yet (a repeated "
                "message is harmless)",
                len(task_ids),
                seconds,
            )
            self.submit(task_ids)
        return len(task_ids)

    @property
    def running(self) -> bool:
        """Whether the publishing thread is alive."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()  # for flush()
                    while not self._pending and not self._unpublished and not self._closing:
                        self._wake.wait()
                    if not self._pending and not self._unpublished:
                        return
                    batch = self._pending[: self.batch_limit]
                    del self._pending[: self.batch_limit]
                    unpublished, self._unpublished = self._unpublished, []
                    self._busy = True
                self._unmark(unpublished)
                if batch:
                    self._publish(batch)
        finally:
            with self._wake:
                self._busy = False
                self._wake.notify_all()
            store.close_database()

    def _publish(self, batch: list[str]) -> None:
        sent = False
        if not queue.paused(self.app):  # else it failed moments ago: logged then, recovery's now
            try:
                sent = queue.publish_many(self.app, batch, mark=not self.premarked)
            except Exception:  # nothing may stop this thread; the rows are recovery's
                log.exception(
                    "publishing %d task(s) failed; recovery will re-queue them", len(batch)
                )
        if not sent:
            self._unmark(batch)
        with self._wake:
            self._finished += len(batch)
            self._release_finished()
            if sent:
                self.batches += 1
                self.published += len(batch)
            else:
                self.left_to_recovery += len(batch)
        if sent and self._failing:
            log.info("publishing again (%d task(s) left to recovery so far)", self.left_to_recovery)
        self._failing = not sent

    def _release_finished(self) -> None:
        """Wake the waiters whose ticket has finished (call with ``_wake`` held)."""
        finished = self._finished
        if any(ticket <= finished for ticket, _ in self._waiters):
            for ticket, released in self._waiters:
                if ticket <= finished:
                    released.release()
            self._waiters = [waiter for waiter in self._waiters if waiter[0] > finished]

    def _unmark(self, task_ids: list[str]) -> None:
        """Take back the mark of premarked rows whose message did not leave (recovery's now)."""
        if not self.premarked or not task_ids:
            return
        try:
            store.clear_queued_many(task_ids)
        except Exception:  # then they look queued: re-published after DISPATCHER_REQUEUE_AFTER
            log.exception("could not take back the queued mark of %d task(s)", len(task_ids))

    def _leave(self, task_ids: list[str]) -> None:
        """Leave submitted ids to recovery; said once until a submit fits again."""
        count = len(task_ids)
        with self._wake:
            self.left_to_recovery += count
            if self.premarked and self._thread.is_alive():
                self._unpublished.extend(task_ids)
                self._wake.notify_all()
            said, self._refusing = self._refusing, True
        if not said:
            log.warning(
                "%d task(s) left to recovery: the publisher is %s",
                count,
                "closed" if self._closing else f"{self.pending_limit} tasks behind",
            )
