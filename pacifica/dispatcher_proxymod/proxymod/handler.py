"""The steps of one proxymod run: select files, download, write INIs, run models, deliver.

Everything a task writes stays under its own work directory ``<work_dir>/<task id>/``::

    files/<subdir>/<name>    inputs and models as downloaded (checksums checked)
    run/config_<N>.ini       the configs with absolute directories, given to the models
    result/                  the tree that is uploaded
        config_<N>.ini       the configs with the values as given
        stdout.log stderr.log  what the models printed, one after the other
        logs/<model>.stdout.log logs/<model>.stderr.log  what each model printed
        plots/<model>__<config>.svg  a line chart of each model's output CSVs per config
        <out_dir>/...        what the models wrote
        manifest.json        provenance: event, inputs, models, configs, runs
        ro-crate-metadata.json  the same as a Process Run Crate (see crate.py)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__, modellog
from ..charts import Chart
from ..errors import TaskCancelled, TransferError, UnprocessableEvent, UploadFailed
from ..events import Event, FileEntry, Upload, parse_upload
from ..modellog import LOGS_DIR, STREAMS, ModelLog, model_log_path
from ..paths import resolve_inside
from ..sandbox import ModelRun, run_model, sandbox_status
from ..settings import Settings
from ..states import Stage
from ..transfer import Delivery, Transfer
from ..transfer.base import hash_type
from . import crate, plots, report
from .config import ProxymodConfig, parse_configs
from .files import Selection, select_files

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


@dataclass
class HandlerResult:
    """What one run produced: per-model runs, where the results went, and why it failed."""

    models: list[ModelRun] = field(default_factory=list)
    delivery: Delivery | None = None
    failure: str | None = None
    charts: list[Chart] = field(default_factory=list)
    logs: list[ModelLog] = field(default_factory=list)


def task_dir(settings: Settings, task_id: str) -> Path:
    """The private work directory of one task."""
    return settings.work_dir / task_id


def handle(
    event: Event,
    task_id: str,
    settings: Settings,
    transfer: Transfer,
    cancel: threading.Event | None = None,
) -> HandlerResult:
    """Run the proxymod models an event asks for and deliver their results.

    Once ``cancel`` is set the running model is killed and :class:`TaskCancelled` raised
    before anything is uploaded; a failed upload raises :class:`UploadFailed`.
    """
    upload = parse_upload(event.data)
    configs = parse_configs(upload.key_values, settings.max_configs)
    selection = select_files(upload, configs, settings.max_files)
    isolation = sandbox_status(settings)
    work = task_dir(settings, task_id)
    if work.exists():  # a retried attempt starts from scratch
        shutil.rmtree(work)
    files_dir, run_dir, result_dir = work / "files", work / "run", work / "result"
    for folder in (files_dir, run_dir, result_dir):
        folder.mkdir(parents=True)
    failed = True
    try:
        wanted = [*selection.inputs, *selection.models]
        local = transfer.download(event, upload, wanted, files_dir)
        # checksums as downloaded, before any model runs (and may tamper with them)
        sources = {entry: _source_file(entry, local[entry]) for entry in wanted}
        ini_paths = _write_configs(configs, files_dir, run_dir, result_dir)
        result = HandlerResult()
        written: list[plots.ModelOutputs] = []
        actions: list[crate.ModelAction] = []
        for entry in selection.models:
            _stop_if_cancelled(cancel)
            _guard_result_dir(result_dir)
            before = plots.snapshot(result_dir)
            before_all = crate.snapshot(result_dir)
            model = entry.name[:-3]
            for stream in STREAMS:  # what an earlier model planted there is not this one's
                model_log_path(result_dir, model, stream).unlink(missing_ok=True)
            run = run_model(
                local[entry],
                ini_paths,
                work,
                model_log_path(result_dir, model, "stdout"),
                model_log_path(result_dir, model, "stderr"),
                settings,
                cancel=cancel,
            )
            result.models.append(run)
            _guard_result_dir(result_dir)
            tail = settings.log_tail_kb * 1024
            result.logs += [modellog.collect(result_dir, model, s, tail) for s in STREAMS]
            written.append(
                plots.ModelOutputs(run.model, plots.changed(before, plots.snapshot(result_dir)))
            )
            new = crate.written(before_all, crate.snapshot(result_dir))
            actions.append(crate.ModelAction(sources[entry], run, new))
        _stop_if_cancelled(cancel)
        failures = [
            run.reason or f"model {run.model}: failed"
            for run in result.models
            if run.outcome != "ok"
        ]
        result.failure = "; ".join(failures) or None
        _guard_result_dir(result_dir)
        result.charts = plots.collect(result_dir, configs, written)
        plots.write_plots(result_dir, result.charts)
        if result.failure:
            _write_failure_report(result_dir, event, task_id, upload, result)
        origin = Provenance(event, task_id, upload, configs, selection, local, isolation)
        _write_manifest(result_dir, files_dir, origin, result, settings)
        _guard_result_dir(result_dir)
        crate.write_crate(result_dir, _run_description(origin, result, sources, actions))
        try:
            result.delivery = transfer.upload(
                upload,
                result_dir,
                {
                    "Transactions._id": str(upload.transaction_id),
                    "proxymod.result": "failed" if result.failure else "succeeded",
                    "proxymod.dispatcher_task": task_id,
                },
            )
        except UploadFailed:
            raise
        except TransferError as exc:
            raise UploadFailed(str(exc), transient=exc.transient) from exc
        failed = result.failure is not None
        return result
    finally:
        if settings.keep_work == "never" or (settings.keep_work == "on-failure" and not failed):
            shutil.rmtree(work, ignore_errors=True)


def _stop_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TaskCancelled()


def _write_failure_report(
    result_dir: Path, event: Event, task_id: str, upload: Upload, result: HandlerResult
) -> None:
    """``report.md`` beside the results of a run in which a model failed."""
    _guard_result_dir(result_dir)
    failed = [run for run in result.models if not run.ok]
    facts = report.facts_for(
        task_id,
        event,
        upload,
        state="failed",
        stage=Stage.MODEL.value,
        reason=result.failure or "a model failed",
        problems=[run.reason or f"model {run.model}: {run.outcome}" for run in failed],
        runs=[run.to_json() for run in result.models],
        logs=result.logs,
    )
    report.write_report(result_dir, facts)


def _guard_result_dir(result_dir: Path) -> None:
    """Undo what a model may have planted to make the worker write outside the task."""
    if result_dir.is_symlink() or not result_dir.is_dir():
        raise UnprocessableEvent(f"a model replaced the result directory {result_dir}")
    for name in ("stdout.log", "stderr.log", MANIFEST_NAME, crate.CRATE_NAME, report.REPORT_NAME):
        _remove_unless_file(result_dir / name)
    logs = result_dir / LOGS_DIR
    if logs.is_symlink() or (logs.exists() and not logs.is_dir()):
        logs.unlink()
    logs.mkdir(exist_ok=True)
    for path in logs.iterdir():  # each model's logs: regular files, or nothing
        _remove_unless_file(path)


def _remove_unless_file(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _write_configs(
    configs: Sequence[ProxymodConfig], files_dir: Path, run_dir: Path, result_dir: Path
) -> list[Path]:
    """Write each config twice: as given (result tree) and with absolute dirs (for the models)."""
    ini_paths = []
    for config in configs:
        name = f"config_{config.number}.ini"
        (result_dir / name).write_text(config.ini_text(), encoding="utf-8")
        inputs = resolve_inside(files_dir, config.in_dir) if config.in_dir else files_dir
        resolve_inside(result_dir, config.out_dir)
        absolute = run_dir / name
        absolute.write_text(config.absolute_ini_text(inputs, result_dir), encoding="utf-8")
        ini_paths.append(absolute)
    return ini_paths


def _source_file(entry: FileEntry, path: Path) -> crate.SourceFile:
    """A downloaded file of the input transaction, as the run crate names it."""
    return crate.SourceFile(
        entry.path, entry.file_id, crate.sha1_of(path), path.lstat().st_size, entry.mimetype
    )


def _run_description(
    origin: Provenance,
    result: HandlerResult,
    sources: dict[FileEntry, crate.SourceFile],
    actions: Sequence[crate.ModelAction],
) -> crate.RunDescription:
    return crate.RunDescription(
        task_id=origin.task_id,
        event_source=origin.event.source,
        transaction_id=origin.upload.transaction_id,
        submitter=origin.upload.submitter,
        status="failed" if result.failure else "succeeded",
        failure=result.failure,
        dispatcher_version=__version__,
        configs=tuple(PurePosixPath(f"config_{c.number}.ini") for c in origin.configs),
        inputs=tuple(sources[entry] for entry in origin.selection.inputs),
        actions=tuple(actions),
    )


def _describe(entries: Iterable[FileEntry], local: dict[FileEntry, Path], root: Path) -> list[Any]:
    return [
        {
            "path": local[entry].relative_to(root).as_posix(),
            "hashtype": hash_type(entry),
            "hashsum": entry.hashsum,
            "size": local[entry].lstat().st_size,
        }
        for entry in entries
    ]


def _outputs(result_dir: Path) -> list[dict[str, Any]]:
    """What the run left in the result tree; links are listed as skipped, never followed."""
    found: list[dict[str, Any]] = []
    for path in sorted(result_dir.rglob("*")):
        relative = path.relative_to(result_dir).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_nlink > 1):
            found.append({"path": relative, "skipped": "link"})
        elif stat.S_ISREG(info.st_mode):
            found.append({"path": relative, "sha1": crate.sha1_of(path), "size": info.st_size})
    return found


@dataclass(frozen=True)
class Provenance:
    """Where a run came from: the event, its transaction, the files and configs it used."""

    event: Event
    task_id: str
    upload: Upload
    configs: Sequence[ProxymodConfig]
    selection: Selection
    local: dict[FileEntry, Path]
    isolation: str


def _write_manifest(
    result_dir: Path,
    files_dir: Path,
    origin: Provenance,
    result: HandlerResult,
    settings: Settings,
) -> None:
    event, upload, limits = origin.event, origin.upload, settings.limits
    manifest = {
        "dispatcher": {"name": "pacifica-dispatcher-proxymod", "version": __version__},
        "task": origin.task_id,
        "event": {
            "source": event.source,
            "id": event.id,
            "type": event.type,
            "time": event.time,
            "specversion": event.specversion,
        },
        "input_transaction": upload.transaction_id,
        "submitter": upload.submitter,
        "project": upload.project,
        "instrument": upload.instrument,
        "inputs": _describe(origin.selection.inputs, origin.local, files_dir),
        "models": _describe(origin.selection.models, origin.local, files_dir),
        "configs": [
            {
                "file": f"config_{c.number}.ini",
                "values": {s: dict(v) for s, v in c.sections.items()},
            }
            for c in origin.configs
        ],
        "isolation": origin.isolation,
        "limits": {
            "timeout_seconds": limits.timeout_seconds,
            "memory_mb": limits.memory_mb,
            "cpu_seconds": limits.cpu_seconds,
            "file_size_mb": limits.file_size_mb,
            "open_files": limits.open_files,
            "processes": limits.processes,
        },
        "runs": [run.to_json() for run in result.models],
        "status": "failed" if result.failure else "succeeded",
        "failure": result.failure,
        "outputs": _outputs(result_dir),
    }
    text = json.dumps(manifest, indent=2) + "\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(result_dir / MANIFEST_NAME, flags, 0o644), "w", encoding="utf-8") as out:
        out.write(text)
