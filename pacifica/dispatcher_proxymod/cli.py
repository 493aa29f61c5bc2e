"""The ``pacifica-dispatcher-proxymod`` command.

pacifica-dispatcher-proxymod [--host H] [--port P] [--config CHERRYPY_CONFIG]   web server
pacifica-dispatcher-proxymod worker [celery worker options]                      a worker
pacifica-dispatcher-proxymod standalone --data-dir D --output-dir O             web + worker
pacifica-dispatcher-proxymod process EVENT.json --data-dir D --output-dir O     one event
pacifica-dispatcher-proxymod recover                                            re-queue lost
pacifica-dispatcher-proxymod purge --older-than DAYS                            delete old tasks
pacifica-dispatcher-proxymod logs ID [--model M] [--stream S]                   a task's logs
pacifica-dispatcher-proxymod tasks [--state S] [--since T] [-q TEXT]             list tasks
pacifica-dispatcher-proxymod show ID | retry ID | cancel ID                      one task
pacifica-dispatcher-proxymod subscribe --notifications-url U --user N --target-url T  subscribe
pacifica-dispatcher-proxymod pack DATA_DIR --config A.ini [...] --output EVENT.json    prepare
pacifica-dispatcher-proxymod check EVENT.json [--data-dir D]                       check one
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cherrypy

from .errors import DispatcherError
from .logconfig import configure as configure_logging
from .logconfig import flush as flush_logs
from .logconfig import task_context
from .operate import COMMANDS as OPERATOR_COMMANDS
from .operate import add_operator_commands, run_operator_command
from .prepare.check import add_check_arguments, run_check
from .prepare.pack import add_pack_arguments, run_pack
from .settings import Settings, environment_for, load_settings
from .subscribe import add_subscribe_arguments, run_subscribe

if TYPE_CHECKING:
    from .events import Event
    from .web.fastpath import FastPathApplication

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8069


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument(
        "--config", dest="cp_config", metavar="CHERRYPY_CONFIG_FILE", help="a CherryPy config file"
    )


def _local_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="folder standing in for Pacifica's files"
    )
    parser.add_argument(
        "--output-dir", required=True, type=Path, help="folder that receives each task's results"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the console script."""
    parser = argparse.ArgumentParser(
        prog="pacifica-dispatcher-proxymod",
        description="Receive Pacifica events, run proxymod models in a sandbox, upload results.",
    )
    _server_options(parser)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("worker", help="run a Celery worker (every later option goes to celery)")
    standalone = commands.add_parser(
        "standalone", help="web server and worker in one command, SQLite and embedded broker"
    )
    _server_options(standalone)
    _local_options(standalone)
    standalone.add_argument(
        "--state-dir", type=Path, default=None, help="database, broker and work files"
    )
    process = commands.add_parser("process", help="run one event synchronously")
    process.add_argument("event", type=Path, help="the event as JSON (as Notifications sends it)")
    _local_options(process)
    commands.add_parser("recover", help="re-queue tasks whose message may have been lost")
    purge = commands.add_parser(
        "purge", help="delete final tasks (and their kept work directories) finished long ago"
    )
    purge.add_argument(
        "--older-than",
        required=True,
        type=float,
        metavar="DAYS",
        help="finished more than DAYS days ago (0: every final task)",
    )
    logs = commands.add_parser("logs", help="print the kept stdout and stderr of a task's models")
    logs.add_argument("task_id", metavar="ID", help="the task id")
    logs.add_argument("--model", help="only this model")
    logs.add_argument("--stream", choices=("stdout", "stderr"), help="only this stream")
    add_operator_commands(commands)
    subscribe = commands.add_parser(
        "subscribe", help="register (or show, enable, delete) our Notifications subscription"
    )
    add_subscribe_arguments(subscribe)
    add_pack_arguments(commands.add_parser("pack", help="write the event of an upload to make"))
    add_check_arguments(commands.add_parser("check", help="list every problem of an event"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    celery_args: list[str] = []
    if argv[:1] == ["worker"]:  # everything after "worker" belongs to celery
        argv, celery_args = argv[:1], argv[1:]
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        # the web server (no command): its request threads never wait on stderr
        configure_logging(settings, buffered=args.command is None)
        if args.command == "worker":
            return run_worker(settings, celery_args)
        if args.command == "standalone":
            return run_standalone(settings, args)
        if args.command == "process":
            return run_process(settings, args)
        if args.command == "recover":
            return run_recover(settings)
        if args.command == "purge":
            return run_purge(settings, args.older_than)
        if args.command == "logs":
            return run_logs(settings, args)
        if args.command in OPERATOR_COMMANDS:
            return run_operator_command(settings, args, sys.stdout)
        if args.command == "subscribe":
            return run_subscribe(settings, args)
        if args.command in ("pack", "check"):
            return (run_pack if args.command == "pack" else run_check)(settings, args)
        serve(settings, args.host, args.port, args.cp_config)
        return 0
    except DispatcherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def serve(settings: Settings, host: str, port: int, cp_config: str | None = None) -> None:
    """Run the web server until it is stopped (SIGTERM/SIGINT stop it gracefully).

    The CherryPy application runs under waitress (server.py), not CherryPy's own cheroot
    server: slow or idle clients hold a socket there, never one of the threads.
    """
    from .server import mount

    mount_application(settings, cp_config)
    mount(cherrypy.tree, host, port, settings.http, settings.max_body_bytes)
    if hasattr(cherrypy.engine, "signal_handler"):
        cherrypy.engine.signal_handler.subscribe()
    # a SIGTERM during the start ends the process with os._exit: its lines written first
    cherrypy.engine.subscribe("exit", flush_logs, priority=100)
    cherrypy.engine.start()
    cherrypy.engine.block()


def mount_application(settings: Settings, cp_config: str | None = None) -> FastPathApplication:
    """Build the web application and mount it on CherryPy's tree as the web command runs it
    (no HTTP server yet); the engine's ``stop`` closes it after the server stopped."""
    from .web import create_app

    limit_heap_growth()
    app = create_app(settings)
    cherrypy.config.update(
        {
            "engine.autoreload.on": False,
            "checker.on": False,
            # CherryPy's records go to the root handler of logconfig (text or JSON)
            "log.screen": False,
        }
    )
    if cp_config:
        cherrypy.config.update(cp_config)
        app.merge(cp_config)
    cherrypy.tree.mount(app, "")
    # on SIGTERM, once the HTTP server answered what it had read and stopped: the intake
    # writes every row it holds and sends their messages
    cherrypy.engine.subscribe("stop", app.close, priority=STOP_AFTER_SERVER)
    return app


#: The priority of the application's close on the engine's ``stop`` (after the HTTP server's 50).
STOP_AFTER_SERVER = 75

#: glibc's mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8


def limit_heap_growth() -> bool:
    """Make glibc give the memory of large request bodies back to the system.

    By default each of the server's threads gets its own malloc arena and the threshold above
    which buffers are mapped (and unmapped when freed) grows after every large body, so the
    process keeps the peak of every thread: 16 threads that each once read a 4 MiB event held
    about 580 MiB (bench/memory.py). Two arenas and a fixed 128 KiB threshold keep it near
    one request's peak. Call before the server starts its threads; False where the C library
    has no ``mallopt`` (not glibc) or refuses.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_ARENA_MAX, 2)) and bool(mallopt(_M_MMAP_THRESHOLD, 128 * 1024))


def run_worker(settings: Settings, celery_args: Sequence[str]) -> int:
    """Run a Celery worker with the given extra options."""
    from .queue import create_celery_app

    app = create_celery_app(settings)
    # Celery's banner is plain text on stdout: not in a JSON log
    argv = ["--quiet"] if settings.log_format == "json" else []
    argv += ["worker", *celery_args]
    if not any(arg.startswith(("-l", "--loglevel")) for arg in celery_args):
        argv += ["--loglevel", "INFO"]
    app.worker_main(argv)
    return 0


def _standalone_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    state = (args.state_dir or settings.state_dir).absolute()
    return settings.with_changes(
        database_url=f"sqlite:///{state / 'dispatcher.sqlite3'}",
        broker_url="filesystem://",
        backend_url=None,
        state_dir=state,
        work_dir=state / "work",
        transfer="local",
        data_dir=args.data_dir.absolute(),
        output_dir=args.output_dir.absolute(),
    )


def run_standalone(settings: Settings, args: argparse.Namespace) -> int:
    """Web server here and a worker in a child process, sharing SQLite and the embedded broker."""
    settings = _standalone_settings(settings, args)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.output_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    env = environment_for(settings, os.environ)
    worker = subprocess.Popen(
        [sys.executable, "-m", "pacifica.dispatcher_proxymod", "worker", "--concurrency", "2"],
        env=env,
    )
    log.info("standalone: worker pid %d, results under %s", worker.pid, settings.output_dir)
    try:
        serve(settings, args.host, args.port, args.cp_config)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return 0


def run_process(settings: Settings, args: argparse.Namespace) -> int:
    """One event through the handler, here and now; the last stdout line is the result path."""
    from .errors import InvalidEvent, UnprocessableEvent
    from .events import parse_http
    from .proxymod.handler import handle
    from .proxymod.validate import rejection_reasons
    from .transfer import make_transfer

    settings = settings.with_changes(
        transfer="local", data_dir=args.data_dir.absolute(), output_dir=args.output_dir.absolute()
    )
    settings.output_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    try:
        body = args.event.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.event}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        event = parse_http({"Content-Type": "application/json"}, body)
        reasons = rejection_reasons(event, settings)
        task_id = str(uuid.uuid4())
        if reasons:
            _report_rejection(settings, task_id, event, reasons)
            raise UnprocessableEvent(reasons)
        with task_context(task_id, event.id):
            result = handle(event, task_id, settings, make_transfer(settings))
    except (InvalidEvent, UnprocessableEvent) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except DispatcherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    for run in result.models:
        print(json.dumps(run.to_json()))
    if result.failure:
        print(f"error: {result.failure}", file=sys.stderr)
    if result.delivery is not None:
        print(result.delivery.location)
    return 1 if result.failure else 0


def _report_rejection(settings: Settings, task_id: str, event: Event, reasons: list[str]) -> None:
    """Write the report of a rejected event under the output dir, as the service would."""
    from .proxymod.answer import deliver_report
    from .states import TaskStatus
    from .store import Outcome
    from .transfer import make_transfer

    rejected = Outcome(
        TaskStatus.UNPROCESSABLE, error_type="UnprocessableEvent", error_message="; ".join(reasons)
    )
    answered = deliver_report(settings, task_id, event, rejected, make_transfer(settings))
    if answered.result_location:
        print(answered.result_location)


def run_recover(settings: Settings) -> int:
    """One recovery pass: re-publish every task whose message may have been lost."""
    from . import store
    from .queue import create_celery_app, recover

    store.open_database(settings)
    sent = recover(create_celery_app(settings), settings)
    print(f"re-queued {sent} task(s)")
    return 0


def run_purge(settings: Settings, older_than_days: float) -> int:
    """Delete final tasks finished more than ``older_than_days`` ago; print how many."""
    from . import store
    from .retention import purge

    if older_than_days < 0:
        print("error: --older-than must be 0 or more days", file=sys.stderr)
        return 2
    store.open_database(settings)
    purged = purge(settings, older_than_days)
    print(f"purged {purged.tasks} task(s); removed {purged.work_dirs} work directories")
    return 0


def run_logs(settings: Settings, args: argparse.Namespace) -> int:
    """Print a task's kept model logs, as ``GET /logs/<id>`` serves them."""
    from . import store
    from .logview import BadLogRequest, LogNotFound, task_logs

    try:
        task_id = str(uuid.UUID(args.task_id))
    except ValueError:
        print(f"error: {args.task_id!r} is not a task id (a UUID)", file=sys.stderr)
        return 2
    store.open_database(settings)
    try:
        text = task_logs(task_id, args.model, args.stream, settings.log_tail_kb)
    except (LogNotFound, BadLogRequest) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0
