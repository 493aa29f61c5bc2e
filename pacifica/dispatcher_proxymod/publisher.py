"""Publishing the messages of the tasks each intake statement committed, on the writer's thread.

The web's :class:`~.store.Intake` calls its :class:`CommitPublisher` (``on_committed``) with
the ids of the rows a statement created, right after the commit and before their callers are
woken. It sends their messages with :func:`queue.publish_many`: Celery's own messages through
one producer, in one round trip on Redis (one pipeline) and without waiting on AMQP. The rows
were inserted marked queued (``store.new_task(queued=True)``), so a batch sent costs the
database nothing; a 202 therefore means recorded and queued. While the writer publishes, the
next rows gather, so the batches grow with the load, and a lone task goes out at once: no
thread of its own and no hand-over between threads (one publish serves the whole statement).

A batch that cannot be published is left to recovery: its rows get their mark taken back
(:func:`store.clear_queued_many`, one UPDATE) before their callers are answered, so
:func:`store.needing_requeue` finds them 5 s after they were created and the workers' recovery
pass (:func:`queue.recover`) re-publishes them. The failure is logged once for each pause
(``queue.PUBLISH_PAUSE_SECONDS``) in which the broker is not tried again; batches committed in
the pause are left to recovery at once. A broker that hangs holds the writer (and so every
waiting request) for about the web's publish timeout (``DISPATCHER_PUBLISH_TIMEOUT_SECONDS``,
given to its Celery app with ``create_celery_app(publish_timeout=...)``) once per pause.

A process that dies between a commit and its publish leaves rows that look queued: the next web
start re-publishes what was queued in the last ``DISPATCHER_REQUEUE_AFTER`` seconds
(:meth:`CommitPublisher.republish_recent`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery

from . import queue, store

log = logging.getLogger(__name__)

#: The most messages :meth:`CommitPublisher.republish_recent` sends in one batch (the intake's
#: statements hold at most 128 rows).
BATCH_LIMIT = 256


class CommitPublisher:
    """Sends the messages of committed, premarked rows; see the module.

    Called by one thread at a time (the intake's writer; :meth:`republish_recent` before the
    intake starts), so its counts need no lock.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        #: Batches sent, messages sent, ids left to recovery (for tests and figures).
        self.batches = 0
        self.published = 0
        self.left_to_recovery = 0
        self._failing = False

    def __call__(self, task_ids: Sequence[str]) -> bool:
        """Send the tasks' messages as one batch; False when they were left to recovery (their
        queued mark taken back)."""
        if not task_ids:
            return True
        sent = False
        if not queue.paused(self.app):  # else it failed moments ago: logged then, recovery's now
            try:
                sent = queue.publish_many(self.app, task_ids, mark=False)
            except Exception:  # nothing may fail the commit's callers: the rows are recovery's
                log.exception(
                    "publishing %d task(s) failed; recovery will re-queue them", len(task_ids)
                )
        if sent:
            self.batches += 1
            self.published += len(task_ids)
            if self._failing:
                log.info(
                    "publishing again (%d task(s) left to recovery so far)", self.left_to_recovery
                )
        else:
            self.left_to_recovery += len(task_ids)
            self._unmark(task_ids)
        self._failing = not sent
        return sent

    def republish_recent(self, seconds: float) -> int:
        """Publish every task marked queued in the last ``seconds`` that no worker started
        (:func:`store.queued_within`): at a web start, the rows a process that died between a
        commit and its publish left looking queued. How many were tried (0 when the store cannot
        say now: the workers' recovery finds them after ``seconds``)."""
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
        for start in range(0, len(task_ids), BATCH_LIMIT):
            self(task_ids[start : start + BATCH_LIMIT])
        return len(task_ids)

    def _unmark(self, task_ids: Sequence[str]) -> None:
        """Take back the mark of rows whose message did not leave (recovery's now)."""
        try:
            store.clear_queued_many(task_ids)
        except Exception:  # then they look queued: re-published after DISPATCHER_REQUEUE_AFTER
            log.exception("could not take back the queued mark of %d task(s)", len(task_ids))
