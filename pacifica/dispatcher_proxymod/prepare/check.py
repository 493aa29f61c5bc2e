"""``pacifica-dispatcher-proxymod check EVENT.json [--data-dir D]``: every problem, no model run.

It runs the worker's validation (:func:`..proxymod.validate.request_problems`: the route, the
configs, the files the event lists) and, with ``--data-dir``, reads each file the run would
download from ``D/<subdir>/<name>`` as the local transfer does, comparing size and sha1, and
reads each model file without running it: it must parse, and define the function it is named
after. Every problem is listed at once; the exit status is 0 only when there is none.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ..errors import DispatcherError, InvalidEvent, UnprocessableEvent
from ..events import Event, FileEntry, parse_http, parse_upload
from ..paths import resolve_inside, safe_relative_dir
from ..problems import Problem, nearest
from ..proxymod.files import MODELS_DIR, PYTHON_TYPE
from ..proxymod.validate import rejection_reasons, selection
from ..settings import Settings
from ..transfer.base import open_regular_file

#: Exit status when the event has problems (0: none; 2: the file cannot be read at all).
EXIT_PROBLEMS = 1


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``check``."""
    parser.add_argument("event", type=Path, help="the event as JSON (as Notifications sends it)")
    parser.add_argument(
        "--data-dir", type=Path, help="also check the files here: present, size and sha1"
    )


def run_check(settings: Settings, args: argparse.Namespace) -> int:
    """The ``check`` command: print every problem; 0 only when there is none."""
    try:
        body = args.event.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.event}: {exc.strerror}", file=sys.stderr)
        return 2
    problems = event_problems(body, settings, args.data_dir)
    if problems:
        print(f"{args.event}: {len(problems)} problem(s), nothing would run:")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_PROBLEMS
    event = parse_http({"Content-Type": "application/json"}, body)
    chosen = selection(event, settings)
    where = f" (files checked in {args.data_dir})" if args.data_dir else ""
    print(
        f"{args.event}: no problems{where}; it would run "
        f"{', '.join(entry.name for entry in chosen.models)} "
        f"on {len(chosen.inputs)} input file(s)"
    )
    return 0


def event_problems(body: bytes, settings: Settings, data_dir: Path | None) -> list[str]:
    """Every problem of the event ``body``: the worker's checks, then the files in ``data_dir``."""
    try:
        event = parse_http({"Content-Type": "application/json"}, body)
    except InvalidEvent as exc:
        return [f"not a CloudEvent: {problem}" for problem in exc.problems]
    reasons = rejection_reasons(event, settings)
    if data_dir is None:
        return reasons
    return reasons + [str(problem) for problem in data_problems(event, data_dir)]


def data_problems(event: Event, data_dir: Path) -> list[Problem]:
    """What is wrong with the event's files as ``data_dir`` holds them: each must be there,
    of the size and sha1 the event states, and each model must parse and define its function."""
    try:
        upload = parse_upload(event.data)
    except UnprocessableEvent:  # the worker's checks said why
        return []
    problems: list[Problem] = []
    for entry in upload.files:
        try:
            relative = _path_of(entry)
        except DispatcherError:  # an unsafe path: the worker's checks said so
            continue
        listed = {other.name for other in upload.files if other.subdir == entry.subdir}
        problems.extend(_file_problems(entry, relative, data_dir, listed))
        if relative.parent == MODELS_DIR and entry.mimetype == PYTHON_TYPE:
            problems.extend(_model_problems(entry, data_dir))
    return problems


def _path_of(entry: FileEntry) -> PurePosixPath:
    return safe_relative_dir(entry.subdir, "subdir") / entry.name


def _file_problems(
    entry: FileEntry, relative: PurePosixPath, data_dir: Path, listed: set[str]
) -> list[Problem]:
    """``entry`` exists under ``data_dir`` as a regular file of the stated size and sha1; if it
    is missing, the nearest file there that the event does not list already is offered."""
    where = relative.as_posix()
    try:
        path = resolve_inside(data_dir, relative)
    except DispatcherError as exc:
        return [Problem(where, str(exc))]
    if not path.is_file():
        folder = path.parent
        names = (
            sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in listed)
            if folder.is_dir()
            else []
        )
        fixed = nearest(entry.name, names)
        what = (
            f"not in {data_dir}"
            if folder.is_dir()
            else f"no folder {relative.parent}/ in {data_dir}"
        )
        return [Problem(where, what, suggestion=fixed)]
    try:
        hashsum, size = sha1_and_size(path)
    except (OSError, DispatcherError) as exc:
        return [Problem(where, f"cannot be read: {exc}")]
    problems = []
    if entry.size is not None and entry.size != size:
        problems.append(Problem(where, f"is {size} bytes", f"the event says {entry.size}"))
    if entry.hashsum.lower() != hashsum:
        problems.append(Problem(where, f"sha1 is {hashsum}", f"the event says {entry.hashsum}"))
    if problems:
        problems[-1] = Problem(
            problems[-1].where,
            problems[-1].what,
            problems[-1].expected,
            note="the file changed after the event was written: run pack again",
        )
    return problems


def sha1_and_size(path: Path) -> tuple[str, int]:
    """The sha1 (hex) and size of the regular file ``path`` (a link is refused)."""
    digest = hashlib.sha1()  # noqa: S324 - Pacifica's own checksum, not for security
    size = 0
    with open_regular_file(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _model_problems(entry: FileEntry, data_dir: Path) -> list[Problem]:
    """The model file parses and defines, at top level, the function it is named after."""
    relative = _path_of(entry)
    where = relative.as_posix()
    name = entry.name.removesuffix(".py")
    try:
        path = resolve_inside(data_dir, relative)
        source = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    except (OSError, DispatcherError):
        source = None
    if source is None:  # _file_problems said why
        return []
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as exc:
        return [Problem(f"{where}, line {exc.lineno}", f"SyntaxError: {exc.msg}")]
    defined = _top_level_names(tree.body)
    if name in defined:
        return []
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    return [
        Problem(
            where,
            f"defines no function {name}",
            "the dispatcher calls <file name>(config_1, ...)",
            nearest(name, functions),
        )
    ]


def _top_level_names(body: Sequence[ast.stmt]) -> set[str]:
    """Names bound at a module's top level (functions, classes, assignments, imports)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.If, ast.Try)):  # e.g. a guarded definition
            names.update(_top_level_names(node.body))
    return names
