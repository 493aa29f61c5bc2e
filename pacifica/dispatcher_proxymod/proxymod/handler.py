"""The steps of one proxymod run: select files, download, write INIs, run models, deliver.

Everything a task writes stays under its own work directory ``<work_dir>/<task id>/``::

    sandbox/                 the models' work directory: all that a sandboxed model sees
        files/<subdir>/<name>  inputs and models as downloaded (checksums checked)
        run/config_<N>.ini     the configs with absolute directories, given to the models
        result/                the tree that is uploaded
            <out_dir>/...        what the models wrote (checked and bounded: results.py)
            config_<N>.ini       the configs with the values as given
            stdout.log stderr.log  what the models printed, one after the other
            logs/<model>.stdout.log logs/<model>.stderr.log  what each model printed
            plots/<model>__<config>.svg  a line chart of each model's output CSVs per config
            manifest.json        provenance: event, inputs, models, configs, runs, refusals
            ro-crate-metadata.json  the same as a Process Run Crate (see crate.py)
    service/                 the logs while the models run, out of their sight

Every name of ``result/`` but ``<out_dir>`` is the service's: written once the models' files
were collected (:func:`results.collect_outputs` refuses a model's file of such a name), they win.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
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
from ..tree import remove_tree
from . import crate, plots, report
from .config import ProxymodConfig, parse_configs
from .files import Selection, select_files
from .results import Outputs, collect_outputs, describe_outputs, move_in

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


def sandbox_dir_of(settings: Settings, task_id: str) -> Path:
    """The part of a task's work directory its models see (their work directory)."""
    return task_dir(settings, task_id) / "sandbox"


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
        remove_tree(work)
    sandbox_dir, service_dir = sandbox_dir_of(settings, task_id), work / "service"
    files_dir, run_dir = sandbox_dir / "files", sandbox_dir / "run"
    result_dir = sandbox_dir / "result"
    for folder in (files_dir, run_dir, result_dir, service_dir / LOGS_DIR):
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
            run = run_model(
                local[entry],
                ini_paths,
                sandbox_dir,
                model_log_path(service_dir, model, "stdout"),
                model_log_path(service_dir, model, "stderr"),
                settings,
                cancel=cancel,
            )
            result.models.append(run)
            _guard_result_dir(result_dir)
            tail = settings.log_tail_kb * 1024
            result.logs += [modellog.collect(service_dir, model, s, tail) for s in STREAMS]
            written.append(
                plots.ModelOutputs(run.model, plots.changed(before, plots.snapshot(result_dir)))
            )
            new = crate.written(before_all, crate.snapshot(result_dir))
            actions.append(crate.ModelAction(sources[entry], run, new))
        _stop_if_cancelled(cancel)
        outputs = collect_outputs(result_dir, settings)
        failures = [
            run.reason or f"model {run.model}: failed"
            for run in result.models
            if run.outcome != "ok"
        ]
        result.failure = "; ".join([*failures, *filter(None, [outputs.failure])]) or None
        _write_service_files(configs, service_dir, result_dir)
        result.charts = plots.collect(result_dir, configs, written)
        plots.write_plots(result_dir, result.charts)
        if result.failure:
            _write_failure_report(result_dir, event, task_id, upload, result)
        origin = Provenance(event, task_id, upload, configs, selection, local, isolation)
        _write_manifest(result_dir, files_dir, origin, result, outputs, settings)
        delivered = [_delivered_only(action, result_dir) for action in actions]
        crate.write_crate(result_dir, _run_description(origin, result, sources, delivered))
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
            remove_tree(work)


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
    """Refuse a result directory a model replaced (by a link or a file)."""
    if result_dir.is_symlink() or not result_dir.is_dir():
        raise UnprocessableEvent(f"a model replaced the result directory {result_dir}")


def _write_service_files(
    configs: Sequence[ProxymodConfig], service_dir: Path, result_dir: Path
) -> None:
    """The service's files, written after the models' files were collected: they win."""
    _guard_result_dir(result_dir)
    (result_dir / LOGS_DIR).mkdir()
    for log_file in sorted((service_dir / LOGS_DIR).iterdir()):
        move_in(log_file, result_dir / LOGS_DIR / log_file.name)
    for stream in STREAMS:
        move_in(service_dir / f"{stream}.log", result_dir / f"{stream}.log")
    for config in configs:
        _write_new(result_dir / f"config_{config.number}.ini", config.ini_text())


def _delivered_only(action: crate.ModelAction, result_dir: Path) -> crate.ModelAction:
    """The action with only the files it wrote that are delivered (not refused)."""
    kept = tuple(path for path in action.results if (result_dir / path).is_file())
    return dataclasses.replace(action, results=kept)


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (never through a link, never over an existing file) holding ``text``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8") as out:
        out.write(text)


def _write_configs(
    configs: Sequence[ProxymodConfig], files_dir: Path, run_dir: Path, result_dir: Path
) -> list[Path]:
    """Write each config with absolute dirs for the models (the result tree gets each as given
    once the models are done)."""
    ini_paths = []
    for config in configs:
        name = f"config_{config.number}.ini"
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
    outputs: Outputs,
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
            "tmp_mb": limits.tmp_mb,
            "max_output_mb": settings.max_output_mb,
            "max_output_files": settings.max_output_files,
        },
        "runs": [run.to_json() for run in result.models],
        "status": "failed" if result.failure else "succeeded",
        "failure": result.failure,
        "outputs": describe_outputs(result_dir, outputs),
        "refused": outputs.refused,
    }
    _write_new(result_dir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
