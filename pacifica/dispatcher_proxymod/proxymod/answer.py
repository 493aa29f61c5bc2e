"""The answer to an upload whose task ended rejected or failed without delivering a result tree.

A model failure is answered by the handler itself (its results carry ``report.md``). Every other
end that is not success (a request rejected by validation, a download or upload that failed for
good, an error of the dispatcher) is answered here: a report tree is made in the task's work
directory (``report/``) from ``report.md``, a report ``manifest.json``, the run crate and whatever
the run left in its result tree (configs, the models' logs, partial outputs), and uploaded as a
transaction linked to the input one (``Transactions._id``, the same submitter, project and
instrument) with ``proxymod.result`` = ``rejected`` or ``failed`` and ``proxymod.dispatcher_task``.

The upload is retried like results (``DISPATCHER_TRANSFER_RETRIES`` times, from
``DISPATCHER_RETRY_BACKOFF`` seconds, doubling). When it still fails, the task keeps its
original reason; the delivery problem is added on a line of its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__
from ..errors import TransferError, UnprocessableEvent
from ..events import Event, Upload, parse_upload
from ..modellog import STREAMS, ModelLog, model_log_path
from ..settings import Settings
from ..states import Stage, TaskStatus
from ..store import Outcome
from ..transfer import Delivery, Transfer
from ..transfer.base import list_result_files, open_regular_file
from ..tree import remove_tree
from . import crate, report, routing
from .handler import sandbox_dir_of
from .validate import rejection_reasons

log = logging.getLogger(__name__)

REPORT_DIR = "report"
MANIFEST_NAME = "manifest.json"
_REGENERATED = {MANIFEST_NAME, crate.CRATE_NAME, report.REPORT_NAME}


def needs_report(outcome: Outcome) -> bool:
    """Whether the task ended rejected or failed with nothing delivered yet."""
    answered = outcome.status in (TaskStatus.UNPROCESSABLE, TaskStatus.FAILED)
    return answered and not outcome.result_location


def deliver_report(
    settings: Settings, task_id: str, event: Event, outcome: Outcome, transfer: Transfer
) -> Outcome:
    """Upload the report of a rejected or failed task; the outcome, with where it went.

    Nothing is uploaded for an event with no input transaction to link to, nor for a rejected
    event that does not ask for proxymod at all (another kind of upload).
    """
    if not needs_report(outcome):
        return outcome
    try:
        upload = parse_upload(event.data)
    except UnprocessableEvent:
        return outcome
    if upload.transaction_id is None:
        return outcome
    rejected = outcome.status is TaskStatus.UNPROCESSABLE
    if rejected and not routing.asks_for_proxymod(event, settings):
        return outcome
    state = "rejected" if rejected else "failed"
    work = settings.work_dir / task_id
    tree = work / REPORT_DIR
    try:
        problems = _problems(settings, event, outcome)
        result_dir = sandbox_dir_of(settings, task_id) / "result"
        make_report_tree(tree, result_dir, task_id, event, upload, outcome, problems)
        delivery = _upload(settings, transfer, upload, tree, task_id, state)
    except (TransferError, OSError) as exc:
        note = f"The report could not be uploaded either: {exc}"
        log.error("task %s: %s", task_id, note)
        return dataclasses.replace(outcome, also=note)
    finally:  # a rejected task's work is its report only: kept when all work is kept
        if settings.keep_work == "never" or (rejected and settings.keep_work != "always"):
            remove_tree(work)  # whatever tree a model left (iterative)
    log.info("task %s: report delivered to %s", task_id, delivery.location)
    return dataclasses.replace(
        outcome, result_location=delivery.location, result_transaction=delivery.transaction_id
    )


def stage_of(outcome: Outcome) -> Stage:
    """Where the task ended: as the worker recorded it, else from the outcome's error."""
    if outcome.stage is not None:
        return outcome.stage
    if outcome.status is TaskStatus.UNPROCESSABLE:
        return Stage.VALIDATE
    if outcome.error_type == "TransferError":
        return Stage.UPLOAD if outcome.models else Stage.DOWNLOAD
    if outcome.error_type == "ModelFailed":
        return Stage.MODEL
    return Stage.INTERNAL


def _problems(settings: Settings, event: Event, outcome: Outcome) -> list[str]:
    """Every problem of a rejected request (found again, one per line), else the reason."""
    message = outcome.error_message or outcome.error_type or "failed"
    if outcome.status is TaskStatus.UNPROCESSABLE:
        found = rejection_reasons(event, settings)
        if found:
            return found
    return [message.splitlines()[0]]


def make_report_tree(
    tree: Path,
    result_dir: Path,
    task_id: str,
    event: Event,
    upload: Upload,
    outcome: Outcome,
    problems: list[str],
) -> None:
    """Lay out the report tree: what the run left, then report.md, manifest.json, the crate."""
    if tree.exists():
        remove_tree(tree)
    tree.mkdir(parents=True)
    runs = list(outcome.models) or _runs_of(result_dir)
    if result_dir.is_dir() and not result_dir.is_symlink():
        for item in list_result_files(result_dir):
            if item.relative_path.as_posix() in _REGENERATED:
                continue
            target = tree.joinpath(*item.relative_path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.path, target, follow_symlinks=False)
    state = "rejected" if outcome.status is TaskStatus.UNPROCESSABLE else "failed"
    message = outcome.error_message or outcome.error_type or state
    reason = message.splitlines()[0]
    stage = stage_of(outcome)
    facts = report.facts_for(
        task_id,
        event,
        upload,
        state=state,
        stage=stage.value,
        reason=reason,
        problems=problems,
        runs=runs,
        logs=list(outcome.logs) or _log_tails(tree, runs),
    )
    report.write_report(tree, facts)
    _write_manifest(tree, task_id, event, upload, outcome, stage, problems, runs)
    crate.write_crate(
        tree,
        crate.RunDescription(
            task_id=task_id,
            event_source=event.source,
            transaction_id=upload.transaction_id,
            submitter=upload.submitter,
            status=state,
            failure=reason,
            dispatcher_version=__version__,
            configs=tuple(
                item.relative_path
                for item in list_result_files(tree)
                if item.relative_path.parent == PurePosixPath(".")
                and item.relative_path.suffix == ".ini"
            ),
        ),
    )


def _runs_of(result_dir: Path) -> list[dict[str, Any]]:
    """The model runs the handler recorded in its manifest before a later step failed."""
    path = result_dir / MANIFEST_NAME
    try:
        with open_regular_file(path) as handle:
            runs = json.loads(handle.read(8 * 1024 * 1024)).get("runs", [])
    except (OSError, ValueError, AttributeError, TransferError):
        return []
    return [run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else []


def _log_tails(tree: Path, runs: list[dict[str, Any]]) -> list[ModelLog]:
    """The end of each model's logs as copied into the report tree."""
    tails = []
    for run in runs:
        for stream in STREAMS:
            path = model_log_path(tree, str(run.get("model")), stream)
            if path.is_file() and not path.is_symlink():
                text = path.read_bytes()[-report.LOG_TAIL_CHARS * 4 :].decode("utf-8", "replace")
                tails.append(ModelLog(str(run.get("model")), stream, text))
    return tails


def _write_manifest(
    tree: Path,
    task_id: str,
    event: Event,
    upload: Upload,
    outcome: Outcome,
    stage: Stage,
    problems: list[str],
    runs: list[dict[str, Any]],
) -> None:
    state = "rejected" if outcome.status is TaskStatus.UNPROCESSABLE else "failed"
    manifest: dict[str, Any] = {
        "dispatcher": {"name": "pacifica-dispatcher-proxymod", "version": __version__},
        "task": task_id,
        "event": {"source": event.source, "id": event.id, "type": event.type},
        "input_transaction": upload.transaction_id,
        "submitter": upload.submitter,
        "project": upload.project,
        "instrument": upload.instrument,
        "status": state,
        "stage": stage.value,
        "error_type": outcome.error_type,
        "reason": outcome.error_message,
        "problems": problems,
        "runs": runs,
    }
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(tree / MANIFEST_NAME, flags, 0o644), "w", encoding="utf-8") as out:
        out.write(json.dumps(manifest, indent=2) + "\n")


def _upload(
    settings: Settings, transfer: Transfer, upload: Upload, tree: Path, task_id: str, state: str
) -> Delivery:
    key_values = {
        "Transactions._id": str(upload.transaction_id),
        "proxymod.result": state,
        "proxymod.dispatcher_task": task_id,
    }
    attempt = 0
    while True:
        try:
            return transfer.upload(upload, tree, key_values)
        except TransferError as exc:
            if not exc.transient or attempt >= settings.transfer_retries:
                raise
            delay = settings.retry_backoff_seconds * 2**attempt
            attempt += 1
            log.warning("task %s: report upload attempt %d failed (%s); again in %g s",
                        task_id, attempt, exc, delay)  # fmt: skip
            time.sleep(delay)
