"""``ro-crate-metadata.json``: a result or report tree described as a Process Run Crate.

The crate follows RO-Crate 1.1 and the Process Run Crate profile 0.5
(https://w3id.org/ro/wfrun/process/0.5), built with the ``rocrate`` library:

- the root dataset lists every regular file of the tree (``hasPart``, each with ``sha1``,
  ``contentSize`` and ``encodingFormat``), conforms to the profile and mentions the runs;
- each model run is a ``CreateAction``: ``instrument`` the model file (``File`` and
  ``SoftwareSourceCode``, with its ``sha1``), ``object`` the INI configs and input files,
  ``result`` the files the run wrote, ``startTime``/``endTime``, ``actionStatus``
  (``CompletedActionStatus`` or ``FailedActionStatus`` with ``error``), ``exitCode``, and the
  submitter as ``agent``;
- the model and input files live in the input transaction, not in the tree: they are web-based
  data entities identified by their Pacifica URI (``.../files?_id=N``, derived from the event's
  ``source`` ``.../transactions?_id=M``), or ``<transaction URI>#<path>`` when there is none,
  each ``isPartOf`` the transaction (``isBasedOn`` of the root).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from rocrate.model.contextentity import ContextEntity
from rocrate.rocrate import ROCrate

from ..sandbox import ModelRun
from ..transfer.base import list_result_files, open_regular_file

CRATE_NAME = "ro-crate-metadata.json"
RO_CRATE_VERSION = "1.1"
PROFILE_ID = "https://w3id.org/ro/wfrun/process/0.5"
PROFILE_VERSION = "0.5"
WORKFLOW_RUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"

_PACIFICA_SOURCE = re.compile(r"^(?P<base>https?://[^?#]+/)transactions\?_id=(?P<id>\d+)$")
_TYPES = {".ini": "text/plain", ".log": "text/plain", ".md": "text/markdown", ".csv": "text/csv"}

#: Files of the tree: relative path -> (size, mtime), to tell what one model run wrote.
Snapshot = Mapping[PurePosixPath, tuple[int, float]]


@dataclass(frozen=True)
class SourceFile:
    """A file of the input transaction that the run read (a model or an input CSV)."""

    path: str  # subdir/name as uploaded
    file_id: int | None
    sha1: str
    size: int
    mimetype: str


@dataclass(frozen=True)
class ModelAction:
    """One model run: the model file, what happened, and the tree files it wrote."""

    model: SourceFile
    run: ModelRun
    results: tuple[PurePosixPath, ...]


@dataclass(frozen=True)
class RunDescription:
    """What the crate says about one task, result or report."""

    task_id: str
    event_source: str
    transaction_id: int | None
    submitter: int | str | None
    status: str  # "succeeded" | "failed" | "rejected"
    failure: str | None
    dispatcher_version: str
    configs: tuple[PurePosixPath, ...] = ()
    inputs: tuple[SourceFile, ...] = ()
    actions: tuple[ModelAction, ...] = field(default=())


def snapshot(result_dir: Path) -> Snapshot:
    """Every regular file of the tree now (links never followed)."""
    return {item.relative_path: (item.size, item.mtime) for item in list_result_files(result_dir)}


def written(before: Snapshot, after: Snapshot) -> tuple[PurePosixPath, ...]:
    """The files that are new or different in ``after``."""
    return tuple(path for path, seen in after.items() if before.get(path) != seen)


def sha1_of(path: Path) -> str:
    """The sha1 of a regular file (never through a link)."""
    digest = hashlib.sha1()  # noqa: S324 - Pacifica's own checksum, not for security
    with open_regular_file(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def transaction_uri(source: str, transaction_id: int | None) -> str:
    """The input transaction's identifier: the event's source when it is Pacifica's URI."""
    if _PACIFICA_SOURCE.match(source):
        return source
    return f"urn:pacifica:transactions:{quote(str(transaction_id), safe='')}"


def source_file_uri(source: str, transaction_id: int | None, entry: SourceFile) -> str:
    """The identifier of a file of the input transaction."""
    match = _PACIFICA_SOURCE.match(source)
    if match and entry.file_id is not None:
        return f"{match['base']}files?_id={entry.file_id}"
    return f"{transaction_uri(source, transaction_id)}#{quote(entry.path)}"


def build_crate(result_dir: Path, description: RunDescription) -> dict[str, Any]:
    """The crate's JSON-LD for the tree at ``result_dir`` as it is now."""
    crate = ROCrate(version=RO_CRATE_VERSION)
    crate.metadata.extra_contexts.append(WORKFLOW_RUN_CONTEXT)
    profile = crate.add(
        ContextEntity(
            crate,
            PROFILE_ID,
            {"@type": "CreativeWork", "name": "Process Run Crate", "version": PROFILE_VERSION},
        )
    )
    root = crate.root_dataset
    root["conformsTo"] = profile
    root["name"] = f"proxymod run {description.task_id}: {description.status}"
    root["description"] = _summary(description)
    root["datePublished"] = datetime.now(UTC).isoformat(timespec="seconds")

    local: dict[PurePosixPath, Any] = {}
    for item in list_result_files(result_dir):
        if item.relative_path == PurePosixPath(CRATE_NAME):
            continue
        local[item.relative_path] = crate.add_file(
            dest_path=item.relative_path.as_posix(),
            properties={
                "name": item.relative_path.name,
                "sha1": sha1_of(item.path),
                "contentSize": str(item.size),
                "encodingFormat": _media_type(item.relative_path),
            },
        )

    transaction = crate.add(
        ContextEntity(
            crate,
            transaction_uri(description.event_source, description.transaction_id),
            {
                "@type": "CreativeWork",
                "name": f"Pacifica transaction {description.transaction_id} (the upload)",
            },
        )
    )
    root["isBasedOn"] = transaction
    agent = None
    if description.submitter is not None:
        agent = crate.add(
            ContextEntity(
                crate,
                _submitter_uri(description),
                {"@type": "Person", "name": f"Pacifica user {description.submitter}"},
            )
        )

    def source_entity(entry: SourceFile, types: list[str]) -> Any:
        uri = source_file_uri(description.event_source, description.transaction_id, entry)
        existing = crate.dereference(uri)
        if existing is not None:
            return existing
        return crate.add_file(
            uri,
            properties={
                "@type": types,
                "name": entry.path,
                "sha1": entry.sha1,
                "contentSize": str(entry.size),
                "encodingFormat": entry.mimetype,
                "isPartOf": {"@id": transaction.id},
            },
        )

    configs = ", ".join(path.as_posix() for path in description.configs)
    objects = [local[path] for path in description.configs if path in local]
    objects += [source_entity(entry, ["File"]) for entry in description.inputs]
    actions = []
    for number, action in enumerate(description.actions, start=1):
        instrument = source_entity(action.model, ["File", "SoftwareSourceCode"])
        instrument["programmingLanguage"] = "Python"
        actions.append(
            crate.add(
                ContextEntity(
                    crate,
                    f"#run-{number}-{action.run.model}",
                    _action_properties(action, instrument, objects, local, agent, configs),
                )
            )
        )
    if actions:
        root["mentions"] = actions
    graph: dict[str, Any] = crate.metadata.generate()
    return graph


def write_crate(result_dir: Path, description: RunDescription) -> Path:
    """Write ``ro-crate-metadata.json`` into the tree (never through a link); return its path."""
    text = json.dumps(build_crate(result_dir, description), indent=2, sort_keys=True) + "\n"
    path = result_dir / CRATE_NAME
    if path.is_symlink() or path.exists():
        path.unlink()  # a model's file of that name is replaced, never written through
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8") as out:
        out.write(text)
    return path


def _action_properties(
    action: ModelAction,
    instrument: Any,
    objects: Sequence[Any],
    local: Mapping[PurePosixPath, Any],
    agent: Any,
    configs: str,
) -> dict[str, Any]:
    run = action.run
    properties: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"Run of {action.model.path}",
        "description": f"{run.model}({configs}) in the {run.isolation} sandbox",
        "startTime": run.started.isoformat(),
        "endTime": run.ended.isoformat(),
        "instrument": instrument,
        "object": list(objects),
        "result": [local[path] for path in action.results if path in local],
        "actionStatus": {"@id": COMPLETED if run.ok else FAILED},
    }
    if agent is not None:
        properties["agent"] = agent
    if run.exit_code is not None:
        properties["exitCode"] = run.exit_code
    if not run.ok:
        properties["error"] = run.reason or f"model {run.model}: {run.outcome}"
    return properties


def _submitter_uri(description: RunDescription) -> str:
    match = _PACIFICA_SOURCE.match(description.event_source)
    user = quote(str(description.submitter), safe="")
    return f"{match['base']}users?_id={user}" if match else f"urn:pacifica:users:{user}"


def _summary(description: RunDescription) -> str:
    runs = len(description.actions)
    text = (
        f"The proxymod dispatcher {description.dispatcher_version} task {description.task_id} "
        f"for Pacifica transaction {description.transaction_id}: {description.status}, "
        f"{runs} model run{'s' if runs != 1 else ''}."
    )
    return f"{text} {description.failure}" if description.failure else text


def _media_type(path: PurePosixPath) -> str:
    return (
        _TYPES.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )
