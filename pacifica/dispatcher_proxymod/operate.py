"""The operator's commands: ``tasks``, ``show``, ``retry``, ``cancel``.

They use the service's settings and the same code as the HTTP API: :func:`store.find_tasks`
for the list, :mod:`.store.shape` for what a task shows, :mod:`.control` for retry and cancel.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
from collections.abc import Sequence
from typing import Any, TextIO

from . import control, store
from .errors import InvalidParameter, TaskNotFound
from .queue import create_celery_app
from .settings import Settings
from .states import TaskState
from .web.tasks import parse_task_id

COMMANDS = ("tasks", "show", "retry", "cancel")
#: The columns of the ``tasks`` table: (title, summary field, width limit).
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("TASK", "taskID", 36),
    ("STATE", "state", 9),
    ("STAGE", "stage", 8),
    ("TRY", "attempt", 3),
    ("RECEIVED", "created", 24),
    ("TRANSACTION", "inputTransaction", 12),
    ("REASON", "reason", 60),
)


def add_operator_commands(commands: Any) -> None:
    """Add the operator's sub-commands to the console script's sub-parsers."""
    tasks = commands.add_parser("tasks", help="list tasks, newest first (as GET / does)")
    states = ", ".join(state.value for state in TaskState)
    tasks.add_argument(
        "--state", action="append", default=[], metavar="S", help=f"only this state ({states})"
    )
    tasks.add_argument("--since", metavar="T", help="received at or after T (ISO 8601)")
    tasks.add_argument("--until", metavar="T", help="received before T (ISO 8601)")
    tasks.add_argument("-q", "--search", metavar="TEXT", help="in event id, source or transaction")
    tasks.add_argument("--page", default="1", help="page number (default 1)")
    tasks.add_argument("--size", help="tasks per page (default: DISPATCHER_PAGE_SIZE)")
    tasks.add_argument("--json", action="store_true", help="print the page as GET / answers")
    show = commands.add_parser("show", help="one task: state, reason, stage and its attempts")
    show.add_argument("task_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the whole record, as GET /get/<id>")
    retry = commands.add_parser("retry", help="run a failed, rejected or cancelled task again")
    retry.add_argument("task_id", metavar="ID")
    cancel = commands.add_parser("cancel", help="cancel a waiting or running task")
    cancel.add_argument("task_id", metavar="ID")


def run_operator_command(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Run ``tasks``, ``show``, ``retry`` or ``cancel``; the exit status (DispatcherError and
    its kin propagate, for the caller to print)."""
    store.open_database(settings)
    if args.command == "tasks":
        return _tasks(settings, args, out)
    task_id = parse_task_id(args.task_id)
    if task_id is None:
        raise InvalidParameter("ID", f"{args.task_id!r} is not a task id (a UUID)")
    if args.command == "show":
        return _show(task_id, args.json, out)
    if args.command == "retry":
        retried = control.retry(create_celery_app(settings), task_id)
        print(f"task {retried.task_id} queued again as attempt {retried.attempt}", file=out)
        return 0
    cancelled = control.cancel(task_id, _command_line_user())
    if cancelled.state is TaskState.CANCELLED:
        print(f"task {task_id} {cancelled.reason}; it will not run", file=out)
    else:
        print(f"task {task_id} is running: its worker stops it ({cancelled.reason})", file=out)
    return 0


def _command_line_user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "an operator"
    return f"{user}@{socket.gethostname()} (command line)"


def _tasks(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    params: dict[str, str | list[str]] = {"state": args.state, "page": args.page}
    for name, value in (
        ("since", args.since),
        ("until", args.until),
        ("q", args.search),
        ("size", args.size),
    ):
        if value is not None:
            params[name] = value
    query = store.TaskQuery.from_params(params, settings.page_size)
    found = store.find_tasks(query)
    rows = [store.summary(task) for task in found.tasks]
    if args.json:
        json.dump({"tasks": rows, "total": found.total, "page": query.page}, out, indent=2)
        print(file=out)
        return 0
    print(table(rows, COLUMNS), file=out)
    shown = f"{len(rows)} of {found.total} task(s)"
    more = f"; next: --page {query.page + 1}" if found.more else ""
    print(f"{shown}, page {query.page}{more}", file=out)
    return 0


def _show(task_id: str, as_json: bool, out: TextIO) -> int:
    task = store.get_task(task_id)
    if task is None:
        raise TaskNotFound(task_id)
    record = store.record(task)
    if as_json:
        json.dump(record, out, indent=2)
        print(file=out)
        return 0
    for field in store.SUMMARY_FIELDS:
        print(f"{field.name + ':':<18}{_text(record[field.name])}", file=out)
    print(f"{'resultLocation:':<18}{_text(record['result']['location'])}", file=out)
    print("\nhistory:", file=out)
    attempts = (
        ("#", "number", 3),
        ("WORKER", "worker", 40),
        ("STARTED", "started", 24),
        ("FINISHED", "finished", 24),
        ("STATE", "state", 9),
        ("REASON", "reason", 60),
    )
    print(table(record["history"], attempts) if record["history"] else "  (never run)", file=out)
    return 0


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, int]]) -> str:
    """``rows`` as a plain-text table; long cells are cut with an ellipsis."""
    cells = [[_cut(_text(row[key]), limit) for _, key, limit in columns] for row in rows]
    widths = [
        max([len(title)] + [len(line[n]) for line in cells])
        for n, (title, _, _) in enumerate(columns)
    ]
    lines = ["  ".join(title.ljust(widths[n]) for n, (title, _, _) in enumerate(columns))]
    lines += ["  ".join(cell.ljust(widths[n]) for n, cell in enumerate(line)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
