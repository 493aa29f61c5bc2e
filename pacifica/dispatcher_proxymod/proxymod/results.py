"""The result tree: what the models wrote, checked and bounded, and the service's own files.

Models write into ``result/`` while they run; the service's files are not there then (its
logs are kept in the task's ``service/`` folder, which the sandbox does not show). Once every
model has ended, :func:`collect_outputs` looks at what they left, before anything is copied:

* a file or folder at the top whose name the service uses (:func:`is_reserved`: the configs,
  logs, manifest, report, crate, ``logs/``, ``plots/``) is refused and removed, so the
  service's file written afterwards is the only one of that name;
* names that are not UTF-8, folders more than :data:`MAX_DEPTH` levels down and paths longer
  than :data:`MAX_PATH_BYTES` are refused and removed; links are skipped (never followed);
* the regular files left are counted, each by the larger of its apparent size and its
  allocated blocks (a sparse file's holes would be written out by a copy): over
  ``DISPATCHER_MAX_OUTPUT_FILES`` or ``DISPATCHER_MAX_OUTPUT_MB`` none of them is delivered
  and the task fails saying which bound and by how much.

Every refusal is listed in the manifest with its reason. Walking is iterative (:mod:`..tree`).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import Settings
from ..transfer.base import MAX_RESULT_DEPTH, is_utf8, list_result_files
from ..tree import Entry, remove_tree, walk
from .crate import sha1_of

#: File names at the top of the result tree that only the service writes.
RESERVED_NAMES = frozenset(
    {"stdout.log", "stderr.log", "manifest.json", "report.md", "ro-crate-metadata.json"}
)
#: Folder names at the top of the result tree that only the service writes.
RESERVED_FOLDERS = frozenset({"logs", "plots"})
#: Patterns of further top-level names only the service writes (the configs as given).
RESERVED_PATTERNS = (re.compile(r"config_\d+\.ini"),)
#: Folder levels below ``result/`` that are delivered.
MAX_DEPTH = MAX_RESULT_DEPTH
#: Longest relative path delivered, in bytes of UTF-8.
MAX_PATH_BYTES = 1024
_MEBIBYTE = 1024 * 1024
_BLOCK = 512  # st_blocks counts 512-byte units


def is_reserved(name: str) -> bool:
    """True when ``name`` at the top of the result tree belongs to the service."""
    return (
        name in RESERVED_NAMES
        or name in RESERVED_FOLDERS
        or any(pattern.fullmatch(name) for pattern in RESERVED_PATTERNS)
    )


@dataclass(frozen=True)
class OutputFile:
    """A regular file a model left that will be delivered."""

    path: str  # relative to result/, "/"-separated
    size: int  # apparent
    counted: int  # the larger of apparent and allocated bytes


@dataclass
class Outputs:
    """What the models left: delivered files, refused and skipped entries, and a failure."""

    files: list[OutputFile] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)  # path, reason
    skipped: list[dict[str, str]] = field(default_factory=list)  # path, skipped
    failure: str | None = None  # a bound was passed: none of the files is delivered

    @property
    def counted_bytes(self) -> int:
        return sum(item.counted for item in self.files)


def shown_path(parts: tuple[str, ...]) -> str:
    """A relative path for people and JSON: bytes that are not UTF-8 as ``\\xNN``."""
    raw = os.fsencode(os.path.join(*parts))
    return raw.decode("utf-8", "backslashreplace")


def _refusal(entry: Entry) -> str | None:
    """Why ``entry`` is not delivered at all (it is then removed), or None."""
    if not is_utf8(entry.name):
        return "the name is not valid UTF-8"
    if len(entry.parts) == 1 and is_reserved(entry.name):
        return "the name is the service's own (a model's file of that name is not delivered)"
    if len("/".join(entry.parts).encode("utf-8")) > MAX_PATH_BYTES:
        return f"the path is longer than {MAX_PATH_BYTES} bytes"
    if entry.is_dir and len(entry.parts) >= MAX_DEPTH:
        return f"the folder is more than {MAX_DEPTH} levels deep"
    return None


def collect_outputs(result_dir: Path, settings: Settings) -> Outputs:
    """Check what the models left under ``result_dir``, remove what is refused, and bound the
    rest (see the module's description); nothing is copied here."""
    outputs = Outputs()
    doomed: list[tuple[str, ...]] = []
    refused_dirs: set[tuple[str, ...]] = set()

    def descend(entry: Entry) -> bool:
        return entry.parts not in refused_dirs

    for entry in walk(result_dir, descend):
        reason = _refusal(entry)
        info = entry.info
        if reason is not None:
            outputs.refused.append({"path": shown_path(entry.parts), "reason": reason})
            doomed.append(entry.parts)
            if entry.is_dir:
                refused_dirs.add(entry.parts)
        elif stat.S_ISLNK(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_nlink > 1):
            outputs.skipped.append({"path": "/".join(entry.parts), "skipped": "link"})
        elif stat.S_ISREG(info.st_mode):
            counted = max(info.st_size, info.st_blocks * _BLOCK)
            outputs.files.append(OutputFile("/".join(entry.parts), info.st_size, counted))
        elif not entry.is_dir:
            outputs.skipped.append({"path": "/".join(entry.parts), "skipped": "not a file"})
    for parts in doomed:
        remove_tree(result_dir.joinpath(*parts))
    outputs.failure = _bound(outputs, settings)
    if outputs.failure is not None:
        for name in os.listdir(result_dir):
            remove_tree(result_dir / name)
        outputs.files = []
    outputs.files.sort(key=lambda item: item.path.split("/"))
    return outputs


def _bound(outputs: Outputs, settings: Settings) -> str | None:
    """Why the files may not be delivered (a count or size bound), or None."""
    count, size = len(outputs.files), outputs.counted_bytes
    problems = []
    if count > settings.max_output_files:
        limit = settings.max_output_files
        problems.append(f"{count} files, more than DISPATCHER_MAX_OUTPUT_FILES={limit}")
    if size > settings.max_output_mb * _MEBIBYTE:
        problems.append(
            f"{size / _MEBIBYTE:.1f} MB (apparent or allocated, the larger per file), more than "
            f"DISPATCHER_MAX_OUTPUT_MB={settings.max_output_mb}"
        )
    if not problems:
        return None
    return f"the models' outputs hold {' and '.join(problems)}: none of them is delivered"


def describe_outputs(result_dir: Path, outputs: Outputs) -> list[dict[str, Any]]:
    """The manifest's ``outputs``: every file of the tree now (the models' and the service's,
    each with its sha1) and each skipped link, by path."""
    listed: list[dict[str, Any]] = [
        {"path": item.relative_path.as_posix(), "sha1": sha1_of(item.path), "size": item.size}
        for item in list_result_files(result_dir)
    ]
    return sorted(listed + list(outputs.skipped), key=lambda entry: str(entry["path"]))


def move_in(source: Path, destination: Path) -> None:
    """Put a file the service wrote elsewhere (a log) into the result tree, where no entry of
    that name is left (:func:`collect_outputs` removed the models')."""
    if destination.exists() or destination.is_symlink():
        remove_tree(destination)
    if source.is_file() and not source.is_symlink():
        os.replace(source, destination)
    else:
        destination.touch(exist_ok=False)
