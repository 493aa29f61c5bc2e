"""Which of an upload's files a proxymod run uses: each config's two input CSVs and the models.

:func:`file_problems` says what is missing, with the nearest file or folder the upload does
have; :func:`select_files` raises them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from ..errors import UnprocessableEvent
from ..events import FileEntry, Upload
from ..paths import safe_file_name, safe_relative_dir
from ..problems import Problem, nearest, texts
from ..transfer.base import SUPPORTED_HASH_TYPES, display_name, hash_type
from .config import ProxymodConfig

CSV_TYPE = "text/csv"
PYTHON_TYPE = "text/x-python"
MODELS_DIR = PurePosixPath("models")
_NOT_IDENTIFIER = re.compile(r"\W")


@dataclass(frozen=True)
class Selection:
    """The files a run downloads: input CSVs (once each) and model files."""

    inputs: tuple[FileEntry, ...]
    models: tuple[FileEntry, ...]


@dataclass(frozen=True)
class _Located:
    subdir: PurePosixPath
    name: str
    entry: FileEntry

    @property
    def path(self) -> str:
        return (self.subdir / self.name).as_posix()


def select_files(upload: Upload, configs: Sequence[ProxymodConfig], max_files: int) -> Selection:
    """The input CSVs each config names and the model files; every problem raised at once."""
    selection, problems = file_problems(upload, configs, max_files)
    if problems:
        raise UnprocessableEvent(texts(problems))
    return selection


def file_problems(
    upload: Upload, configs: Sequence[ProxymodConfig], max_files: int
) -> tuple[Selection, list[Problem]]:
    """What :func:`select_files` selects, and every problem with it."""
    problems: list[Problem] = []
    if upload.transaction_id is None:
        problems.append(Problem("Transactions._id", "missing", "the input transaction's id"))
    if len(upload.files) > max_files:
        problems.append(Problem("Files", f"{len(upload.files)} files, more than {max_files}"))
    located: list[_Located] = []
    for entry in upload.files:
        try:
            subdir = safe_relative_dir(entry.subdir, f"Files subdir of {entry.name!r}")
            located.append(_Located(subdir, safe_file_name(entry.name, "Files name"), entry))
        except UnprocessableEvent as exc:
            problems.extend(Problem("", text) for text in exc.problems)
    inputs: dict[tuple[PurePosixPath, str], FileEntry] = {}
    missing: dict[tuple[PurePosixPath, str], list[str]] = {}  # one problem per file
    others: dict[tuple[PurePosixPath, str], set[str]] = {}  # the configs' other input names
    for config in configs:
        if config.in_dir is None:
            continue
        for key, name in (("in_file_one", config.in_file_one), ("in_file_two", config.in_file_two)):
            assert name is not None  # a config with INPUTS has both names
            found = [
                item.entry
                for item in located
                if item.subdir == config.in_dir
                and item.name == name
                and item.entry.mimetype == CSV_TYPE
            ]
            if found:
                inputs.setdefault((config.in_dir, name), found[0])
            else:
                where = f"proxymod.config_{config.number}.INPUTS.{key}"
                missing.setdefault((config.in_dir, name), []).append(where)
                others.setdefault((config.in_dir, name), set()).update(
                    {str(config.in_file_one), str(config.in_file_two)} - {name}
                )
    for (in_dir, name), wheres in missing.items():
        problem = _missing_input(wheres[0], in_dir, name, located, others[(in_dir, name)])
        if len(wheres) > 1:
            also = "also " + ", ".join(f"`{where}`" for where in wheres[1:])
            problem = replace(problem, note=f"{problem.note}; {also}" if problem.note else also)
        problems.append(problem)
    models = [
        item.entry
        for item in located
        if item.subdir == MODELS_DIR and item.entry.mimetype == PYTHON_TYPE
    ]
    if not models:
        problems.append(_missing_models(located))
    for entry in models:
        stem = entry.name[:-3] if entry.name.endswith(".py") else ""
        if not stem.isidentifier():
            fixed = _NOT_IDENTIFIER.sub("_", entry.name.removesuffix(".py")).lstrip("0123456789")
            problems.append(
                Problem(
                    f"{MODELS_DIR}/{entry.name}",
                    "not a model file name",
                    "models are named <function>.py, <function> a Python identifier",
                    f"{fixed}.py" if fixed.isidentifier() else None,
                )
            )
    for entry in (*inputs.values(), *models):
        hash_problem = _hash_problem(entry)
        if hash_problem is not None:
            problems.append(hash_problem)
    return Selection(tuple(inputs.values()), tuple(models)), problems


def _hash_problem(entry: FileEntry) -> Problem | None:
    """Why the entry's checksum cannot be checked (a type needing a length, an unknown one)."""
    where = display_name(entry)
    if not entry.hashsum:
        return Problem(where, "no checksum (hashsum) to verify the file with")
    if hash_type(entry) in SUPPORTED_HASH_TYPES:
        return None
    return Problem(
        where,
        f"unsupported hash type {entry.hashtype!r}",
        f"supported: {', '.join(SUPPORTED_HASH_TYPES)}",
        nearest(hash_type(entry), SUPPORTED_HASH_TYPES),
    )


def _missing_input(
    where: str, in_dir: PurePosixPath, name: str, located: Sequence[_Located], taken: set[str]
) -> Problem:
    """``name`` is not a CSV of ``in_dir``: say what is there instead (the nearest name that
    is not ``taken`` by the config's other input)."""
    wanted = (in_dir / name).as_posix()
    what = f"the upload has no {CSV_TYPE} File {wanted}"
    same = [item for item in located if item.subdir == in_dir and item.name == name]
    if same:
        return Problem(where, what, note=f"{wanted} is there as {same[0].entry.mimetype}")
    elsewhere = [item.path for item in located if item.name == name]
    if elsewhere:
        return Problem(where, what, note=f"the upload has `{elsewhere[0]}`: is in_dir right?")
    in_folder = [item.name for item in located if item.subdir == in_dir]
    if in_folder:
        holds = f"{in_dir}/ holds {_listed(in_folder)}"
        return Problem(where, what, holds, nearest(name, sorted(set(in_folder) - taken)))
    folders = sorted({item.subdir.as_posix() for item in located})
    fixed = nearest(in_dir.as_posix(), folders)
    note = f"the upload has no folder {in_dir}/" + (f"; did you mean `{fixed}/`?" if fixed else "")
    return Problem(where, what, note=note)


def _missing_models(located: Sequence[_Located]) -> Problem:
    """No Python file under models/: say where the upload's Python files are."""
    what = f"the upload has no {PYTHON_TYPE} File"
    in_models = [item for item in located if item.subdir == MODELS_DIR]
    if in_models:
        kinds = sorted({item.entry.mimetype for item in in_models})
        return Problem(f"{MODELS_DIR}/", what, note=f"its files there are {', '.join(kinds)}")
    python = [item.path for item in located if item.name.endswith(".py")]
    if python:
        return Problem(
            f"{MODELS_DIR}/", what, note=f"models go under {MODELS_DIR}/, not `{python[0]}`"
        )
    return Problem(f"{MODELS_DIR}/", what, "each model is a models/<function>.py file")


def _listed(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
