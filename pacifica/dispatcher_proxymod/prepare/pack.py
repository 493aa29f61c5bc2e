"""``pacifica-dispatcher-proxymod pack DATA_DIR --config A.ini ... --output event.json``.

The scientist writes the INI files their models read, in proxymod's own format (sections
``PROJECT``, ``INPUTS``, ``OUTPUTS``; read here by the runtime's proxymod reader, so comments,
quotes and ``%(name)s`` mean what they mean to proxymod). ``pack`` turns config N (the N-th
``--config``) into the ``proxymod.config_N.*`` key/values, finds each config's inputs under
``DATA_DIR/<in_dir>/`` and the models in ``DATA_DIR/models/``, computes their sha1 and size, and
writes the CloudEvent Notifications would deliver for that upload, checked as the worker checks
it, so ``process event.json --data-dir DATA_DIR`` runs it here. ``--uploader-config`` also writes
the metadata file ``pacifica-cli upload --config`` takes, with the same key/values, so the real
upload asks for exactly what was tested. Each event gets a new id unless ``--event-id`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ..events import INGEST_EVENT_TYPE, parse_http
from ..problems import Problem, nearest
from ..proxymod.config import COUNT_KEY, SCHEMA
from ..proxymod.files import CSV_TYPE, MODELS_DIR, PYTHON_TYPE
from ..proxymod.validate import rejection_reasons
from ..runtime.proxymod._ini import IniError, Section, read_ini
from ..settings import Settings
from .check import data_problems, sha1_and_size

#: The values every proxymod request carries besides its configs.
TASK, VERSION = "advance", "v0.0.1"
#: The submitter, project and instrument of the Pacifica test data (they pass its policy).
DEFAULT_SUBMITTER, DEFAULT_PROJECT, DEFAULT_INSTRUMENT = "10", "1234a", "54"
DEFAULT_TRANSACTION = 1101
STOCK_SOURCE = "http://metadata.pacifica.org/transactions?_id="


class PackError(Exception):
    """The configs or the data folder cannot make a valid upload; ``problems`` says why."""

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = [str(problem) for problem in problems]
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Packed:
    """What ``pack`` made: the event and the key/values it asks for."""

    event: dict[str, Any]
    key_values: dict[str, str]


def add_pack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pack``."""
    parser.add_argument("data_dir", type=Path, help="the folder that will be uploaded")
    parser.add_argument(
        "--config",
        dest="configs",
        action="append",
        required=True,
        type=Path,
        metavar="INI",
        help="a model config in proxymod's INI format; config N is the N-th (repeatable)",
    )
    parser.add_argument("--output", required=True, type=Path, help="where to write the event")
    parser.add_argument(
        "--uploader-config", type=Path, help="also write pacifica-cli's upload metadata here"
    )
    parser.add_argument("--event-id", help="the event's id (default: a new one each time)")
    parser.add_argument("--transaction-id", type=int, default=DEFAULT_TRANSACTION)
    parser.add_argument("--submitter", default=DEFAULT_SUBMITTER)
    parser.add_argument("--project", default=DEFAULT_PROJECT)
    parser.add_argument("--instrument", default=DEFAULT_INSTRUMENT)


def run_pack(settings: Settings, args: argparse.Namespace) -> int:
    """The ``pack`` command: 0 when the event was written, 1 with every problem otherwise."""
    try:
        packed = pack(
            args.data_dir,
            args.configs,
            settings,
            event_id=args.event_id,
            transaction_id=args.transaction_id,
            owners=(args.submitter, args.project, args.instrument),
        )
    except PackError as exc:
        print(f"pack: {len(exc.problems)} problem(s), nothing written:", file=sys.stderr)
        for number, path in enumerate(args.configs, start=1):
            print(f"  config_{number} = {path}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    args.output.write_text(json.dumps(packed.event, indent=2) + "\n", encoding="utf-8")
    files = [entry for entry in packed.event["data"] if entry["destinationTable"] == "Files"]
    print(
        f"wrote {args.output}: event {packed.event['eventID']}, {len(args.configs)} config(s), "
        f"{len(files)} file(s)"
    )
    if args.uploader_config:
        metadata = uploader_metadata(packed.key_values, args.project, args.instrument)
        args.uploader_config.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.uploader_config}: pacifica-cli upload --config {args.uploader_config}")
    return 0


def pack(
    data_dir: Path,
    configs: Sequence[Path],
    settings: Settings,
    *,
    event_id: str | None = None,
    transaction_id: int = DEFAULT_TRANSACTION,
    owners: tuple[str, str, str] = (DEFAULT_SUBMITTER, DEFAULT_PROJECT, DEFAULT_INSTRUMENT),
) -> Packed:
    """The event for ``data_dir`` and ``configs``; PackError lists every problem."""
    data_dir = data_dir.absolute()
    problems: list[Problem] = []
    if not data_dir.is_dir():
        raise PackError([Problem(str(data_dir), "not a folder")])
    key_values: dict[str, str] = {
        "proxymod.task": TASK,
        "proxymod.version": VERSION,
        COUNT_KEY: str(len(configs)),
    }
    wanted: list[tuple[PurePosixPath, str]] = []
    for number, path in enumerate(configs, start=1):
        values, inputs = _config_values(number, path, data_dir, problems)
        key_values.update(values)
        for where, folder, name in inputs:
            others = {other for _, _, other in inputs if other != name}
            problem = _missing_file(data_dir, folder, name, where, others)
            if problem is not None:
                problems.append(problem)
            elif (folder, name) not in wanted:
                wanted.append((folder, name))
    models = sorted((data_dir / MODELS_DIR).glob("*.py"))
    if not models:
        problems.append(Problem(f"{data_dir}/{MODELS_DIR}/", "holds no .py model file"))
    files = [(folder, name, CSV_TYPE) for folder, name in wanted]
    files += [(MODELS_DIR, path.name, PYTHON_TYPE) for path in models]
    entries = []
    for index, (folder, name, mimetype) in enumerate(files):
        entry = _file_entry(data_dir, folder, name, mimetype, transaction_id + 1 + index)
        if isinstance(entry, Problem):
            problems.append(entry)
        else:
            entries.append(entry)
    if problems:
        raise PackError(problems)
    event = _event(key_values, entries, event_id, transaction_id, owners)
    parsed = parse_http({"Content-Type": "application/json"}, json.dumps(event).encode())
    reasons = rejection_reasons(parsed, settings)  # what the worker would say
    reasons += [str(problem) for problem in data_problems(parsed, data_dir)]
    if reasons:
        raise PackError(reasons)
    return Packed(event, key_values)


def _config_values(
    number: int, path: Path, data_dir: Path, problems: list[Problem]
) -> tuple[dict[str, str], list[tuple[str, PurePosixPath, str]]]:
    """Config ``number``'s key/values from the INI at ``path``, and the inputs it names."""
    try:
        root = read_ini(str(path))
    except (OSError, IniError) as exc:
        problems.append(Problem(str(path), f"cannot be read as proxymod reads it: {exc}"))
        return {}, []
    prefix = f"proxymod.config_{number}"
    values: dict[str, str] = {}
    for name, section in root.entries.items():
        if not isinstance(section, Section):
            problems.append(
                Problem(f"{path}: {name}", "a key outside any section", "sections are [PROJECT]...")
            )
            continue
        if name not in SCHEMA:
            fixed = nearest(name, SCHEMA)
            problems.append(Problem(f"{path}: [{name}]", "unknown section", suggestion=fixed))
            continue
        for key in section.entries:
            value = section.value(key)
            if isinstance(value, list):
                problems.append(
                    Problem(
                        f"{path}: [{name}] {key}",
                        "is a list (an unquoted comma)",
                        "quote the value",
                    )
                )
            elif value is None:
                problems.append(Problem(f"{path}: [{name}] {key}", "is a subsection"))
            elif key not in SCHEMA[name]:
                fixed = nearest(key, SCHEMA[name])
                problems.append(Problem(f"{path}: [{name}] {key}", "unknown key", suggestion=fixed))
            else:
                values[f"{prefix}.{name}.{key}"] = _relative(
                    name, key, value, data_dir, path, problems
                )
    in_dir = values.get(f"{prefix}.INPUTS.in_dir")
    inputs = []
    if in_dir is not None:
        for key in ("in_file_one", "in_file_two"):
            file_name = values.get(f"{prefix}.INPUTS.{key}")
            if file_name:
                inputs.append((f"{path}: [INPUTS] {key}", PurePosixPath(in_dir), file_name))
    return values, inputs


def _relative(
    section: str, key: str, value: str, data_dir: Path, path: Path, problems: list[Problem]
) -> str:
    """``in_dir`` relative to ``data_dir`` (an absolute one inside it is made relative)."""
    if key not in ("in_dir", "out_dir") or not value.startswith("/"):
        return value
    where = f"{path}: [{section}] {key}"
    if key == "in_dir":
        try:
            return Path(value).resolve().relative_to(data_dir.resolve()).as_posix()
        except ValueError:
            problems.append(
                Problem(where, f"{value} is outside {data_dir}", "inputs are uploaded from there")
            )
            return value
    problems.append(
        Problem(
            where,
            f"{value} is absolute",
            "out_dir is relative to the run's result tree, e.g. outputs",
        )
    )
    return value


def _missing_file(
    data_dir: Path, folder: PurePosixPath, name: str, where: str, taken: set[str] | None = None
) -> Problem | None:
    """None when ``data_dir/folder/name`` is a regular file; else what is there instead (the
    nearest name not ``taken`` by the config's other keys)."""
    path = data_dir / folder / name
    if path.is_file() and not path.is_symlink():
        return None
    here = data_dir / folder
    if not here.is_dir():
        folders = sorted(
            p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_dir()
        )
        fixed = nearest(folder.as_posix(), folders)
        return Problem(where, f"{data_dir} has no folder {folder}/ (in_dir)", suggestion=fixed)
    names = sorted(p.name for p in here.iterdir() if p.is_file() and p.name not in (taken or ()))
    return Problem(
        where, f"{data_dir}/{folder} has no file {name}", suggestion=nearest(name, names)
    )


def _file_entry(
    data_dir: Path, folder: PurePosixPath, name: str, mimetype: str, file_id: int
) -> dict[str, Any] | Problem:
    """The ``Files`` entry of ``data_dir/folder/name`` as Metadata would describe it."""
    path = data_dir / folder / name
    missing = _missing_file(data_dir, folder, name, f"{folder}/{name}")
    if missing is not None:
        return missing
    hashsum, size = sha1_and_size(path)
    mtime = _timestamp(path.stat().st_mtime)
    return {
        "_id": file_id,
        "ctime": mtime,
        "destinationTable": "Files",
        "hashsum": hashsum,
        "hashtype": "sha1",
        "mimetype": mimetype,
        "mtime": mtime,
        "name": name,
        "size": size,
        "subdir": folder.as_posix(),
    }


def _timestamp(seconds: float) -> str:
    """A time as Metadata writes it: UTC, to the second, no zone."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _event(
    key_values: Mapping[str, str],
    files: Sequence[dict[str, Any]],
    event_id: str | None,
    transaction_id: int,
    owners: tuple[str, str, str],
) -> dict[str, Any]:
    """The CloudEvents 0.1 document Notifications delivers for such an upload."""
    submitter, project, instrument = owners
    data: list[dict[str, Any]] = [
        {"destinationTable": "Transactions.submitter", "value": _number_or_text(submitter)},
        {"destinationTable": "Transactions.project", "value": _number_or_text(project)},
        {"destinationTable": "Transactions.instrument", "value": _number_or_text(instrument)},
    ]
    data += [
        {"destinationTable": "TransactionKeyValue", "key": key, "value": value}
        for key, value in key_values.items()
    ]
    data += files
    data.append({"destinationTable": "Transactions._id", "value": transaction_id})
    return {
        "cloudEventsVersion": "0.1",
        "eventType": INGEST_EVENT_TYPE,
        "source": f"{STOCK_SOURCE}{transaction_id}",
        "eventID": event_id or f"metadata.ingest.{transaction_id}.{uuid.uuid4().hex[:12]}",
        "eventTime": _timestamp(datetime.now(UTC).timestamp()),
        "extensions": {},
        "contentType": "application/json",
        "data": data,
    }


def _number_or_text(value: str) -> int | str:
    """Metadata sends numeric ids as numbers (project ids may be text, like ``1234a``)."""
    return int(value) if value.isdigit() else value


def uploader_metadata(key_values: Mapping[str, str], project: str, instrument: str) -> list[Any]:
    """The metadata file of ``pacifica-cli upload --config``: who, where, and the key/values.

    The submitter is the logged-on user (``--logon``); project and instrument are preset.
    A preset entry carries an empty ``query_results``: pacifica-cli queries Metadata only for
    entries without a value and then walks every entry's results (None would crash it).
    """
    entries: list[dict[str, Any]] = [
        {
            "destinationTable": "Transactions.submitter",
            "displayFormat": "{_id} - {first_name} {last_name}",
            "displayTitle": "Currently Logged On",
            "displayType": "logged_on",
            "metaID": "logon",
            "queryDependency": {},
            "queryFields": ["first_name", "last_name", "_id"],
            "sourceTable": "users",
            "value": "",
            "valueField": "_id",
        },
        {
            "destinationTable": "Transactions.project",
            "displayFormat": "{_id} - {title}",
            "displayTitle": "Project ID",
            "displayType": "select",
            "metaID": "project",
            "queryDependency": {"instrument_id": "instrument"},
            "queryFields": ["_id", "title"],
            "sourceTable": "projects",
            "value": project,
            "valueField": "_id",
            "query_results": [],
        },
        {
            "destinationTable": "Transactions.instrument",
            "displayFormat": "{_id} {name_short} - {display_name}",
            "displayTitle": "Instrument ID",
            "displayType": "select",
            "metaID": "instrument",
            "queryDependency": {},
            "queryFields": ["_id", "name_short", "display_name"],
            "sourceTable": "instruments",
            "value": instrument,
            "valueField": "_id",
            "query_results": [],
        },
    ]
    entries += [
        {
            "destinationTable": "TransactionKeyValue",
            "displayTitle": key,
            "displayType": "text",
            "key": key,
            "metaID": f"kv-{index}",
            "value": value,
            "query_results": [],
        }
        for index, (key, value) in enumerate(key_values.items())
    ]
    return entries
