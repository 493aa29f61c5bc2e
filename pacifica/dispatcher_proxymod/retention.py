"""Purge and retention: delete final tasks finished long enough ago, and their work directories.

``pacifica-dispatcher-proxymod purge --older-than DAYS`` calls :func:`purge` once; with
``DISPATCHER_RETENTION_DAYS`` set, every worker calls it from its recovery loop (at start, then
every :data:`RETENTION_INTERVAL_SECONDS`). A waiting or running task is never deleted: the
delete itself checks the status, so a task retried meanwhile stays. The rows of the tables that
hang off a task (charts, logs, ...) go with it, in the same transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import peewee

from . import store
from .settings import Settings
from .states import TaskStatus
from .tree import remove_tree

log = logging.getLogger(__name__)

#: How often a worker runs the retention pass (the first one right at its start).
RETENTION_INTERVAL_SECONDS = 3600.0
#: Tasks deleted per transaction (keeps locks short on a large store).
BATCH = 500

_FINAL = [status.value for status in TaskStatus if status.final]


@dataclass(frozen=True)
class Purged:
    """What one purge removed."""

    tasks: int
    work_dirs: int


def purge(settings: Settings, older_than_days: float) -> Purged:
    """Delete final tasks finished more than ``older_than_days`` ago (0: every final task)
    and the work directories kept for them under ``settings.work_dir``."""
    if older_than_days < 0:
        raise ValueError("older_than_days must be >= 0")
    condition = store.Task.status.in_(_FINAL)
    if older_than_days > 0:
        cutoff = store.utcnow() - timedelta(days=older_than_days)
        condition &= store.Task.finished < cutoff
    deleted: list[str] = []
    while True:
        batch = _delete_batch(condition)
        deleted += batch
        if len(batch) < BATCH:
            break
    work_dirs = sum(_remove_work_dir(settings.work_dir, task_id) for task_id in deleted)
    work_dirs += _sweep_orphans(settings.work_dir)
    if deleted or work_dirs:
        log.info(
            "purged %d final task(s) finished more than %g day(s) ago and %d work director%s",
            len(deleted),
            older_than_days,
            work_dirs,
            "y" if work_dirs == 1 else "ies",
        )
    return Purged(len(deleted), work_dirs)


@store.reconnecting
def _delete_batch(condition: peewee.Expression) -> list[str]:
    """Delete up to :data:`BATCH` tasks matching ``condition`` (and their rows); their ids."""
    task = store.Task
    with store.connection(), store.database_proxy.atomic():
        ids = [row.id for row in task.select(task.id).where(condition).limit(BATCH)]
        if not ids:
            return []
        # the status is checked again by the delete: a task retried meanwhile stays
        task.delete().where(task.id.in_(ids) & task.status.in_(_FINAL)).execute()
        kept = {row.id for row in task.select(task.id).where(task.id.in_(ids))}
        gone = [task_id for task_id in ids if task_id not in kept]
        for table in store.TASK_TABLES:
            table.delete().where(table.task_id.in_(gone)).execute()
    return gone


def _remove_work_dir(work_dir: Path, task_id: str) -> bool:
    folder = work_dir / task_id
    if not folder.is_dir() or folder.is_symlink():
        return False
    remove_tree(folder)  # any tree a model left: iterative, never through a link
    return not folder.exists()


def _sweep_orphans(work_dir: Path) -> int:
    """Remove the work directories of tasks no longer in the store (purged by another
    machine, whose purge could not see this machine's disk)."""
    if not work_dir.is_dir():
        return 0
    settled = time.time() - RETENTION_INTERVAL_SECONDS  # not a folder being made right now
    names = [
        p.name
        for p in work_dir.iterdir()
        if _is_task_id(p.name) and p.is_dir() and p.lstat().st_mtime < settled
    ]
    removed = 0
    for start in range(0, len(names), BATCH):
        chunk = names[start : start + BATCH]
        with store.connection():
            known = {
                row.id for row in store.Task.select(store.Task.id).where(store.Task.id.in_(chunk))
            }
        removed += sum(_remove_work_dir(work_dir, name) for name in chunk if name not in known)
    return removed


def _is_task_id(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False
