"""The setups (a database and a broker): their tables and queues, read around the code tested."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

#: The machine's PostgreSQL (trust auth) and the benchmarks' own places in it and in the brokers.
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"
BENCH_DATABASE = "dispatcher_bench"
RABBIT_VHOST = "dispatcher_bench"
#: Each script its own database and Redis db, so two benchmarks never share a queue or table
#: (the project's tests use Redis dbs 0-4 and 13, the Pacifica harness 10-12).
SLOTS = {
    "receive": (BENCH_DATABASE, 5),
    "e2e": (BENCH_DATABASE + "_e2e", 6),
    "memory": (BENCH_DATABASE + "_memory", 7),
    "slow": (BENCH_DATABASE + "_slow", 8),
    "ui": (BENCH_DATABASE + "_ui", 9),
}
SETUPS = ("sqlite-fs", "pg-redis", "pg-rabbitmq")

_OUR_VARIABLES = ("DISPATCHER_", "DATABASE_URL", "BROKER_URL", "BACKEND_URL")


@dataclass(frozen=True)
class Setup:
    """A database and a broker for the dispatcher."""

    name: str
    database_url: str
    broker_url: str

    @property
    def postgres_database(self) -> str | None:
        """The PostgreSQL database's name (None on SQLite)."""
        if not self.database_url.startswith("postgresql:"):
            return None
        return self.database_url.rsplit("/", 1)[1]


def make_setup(name: str, state_dir: Path, slot: str) -> Setup:
    """The named setup for one script (``slot``: its database, Redis db and RabbitMQ queue).

    PostgreSQL databases and the RabbitMQ vhost are created when missing.
    """
    from .base import BenchError

    if name == "sqlite-fs":
        return Setup(name, f"sqlite:///{state_dir / 'dispatcher.sqlite3'}", "filesystem://")
    if name not in SETUPS:
        raise BenchError(f"unknown setup {name!r}: one of {', '.join(SETUPS)}")
    database_name, redis_db = SLOTS[slot]
    ensure_postgres_database(database_name)
    database = f"{POSTGRES_SERVER}/{database_name}"
    if name == "pg-redis":
        return Setup(name, database, f"redis://127.0.0.1:6379/{redis_db}")
    ensure_rabbit_vhost()
    return Setup(name, database, f"amqp://guest:guest@127.0.0.1:5672/{RABBIT_VHOST}")


def ensure_postgres_database(name: str) -> None:
    """Create a benchmark database once."""
    connection = psycopg2.connect(f"{POSTGRES_SERVER}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {name}")
    finally:
        connection.close()


def ensure_rabbit_vhost() -> None:
    """Create the benchmark vhost once (guest may use it)."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True
    )
    if RABBIT_VHOST not in listed.stdout.split():
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", RABBIT_VHOST], check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", RABBIT_VHOST, "guest", ".*", ".*", ".*"],
            check=True,
        )


def dispatcher_env(setup: Setup, state_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without our variables, plus the setup and ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_OUR_VARIABLES)}
    env.update(
        DATABASE_URL=setup.database_url,
        BROKER_URL=setup.broker_url,
        DISPATCHER_STATE_DIR=str(state_dir),
        DISPATCHER_WORK_DIR=str(state_dir / "work"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def sql(setup: Setup) -> Iterator[Any]:
    """A DB-API connection to the setup's database (not through the code under test)."""
    connection: Any
    if setup.database_url.startswith("sqlite:"):
        connection = sqlite3.connect(setup.database_url[len("sqlite:///") :], timeout=60)
    else:
        connection = psycopg2.connect(setup.database_url)
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


def _table_exists(cursor: Any, setup: Setup) -> bool:
    if setup.database_url.startswith("sqlite:"):
        cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'dispatcher_task'")
    else:
        cursor.execute("SELECT 1 FROM pg_tables WHERE tablename = 'dispatcher_task'")
    return cursor.fetchone() is not None


def empty_tasks(setup: Setup) -> None:
    """Delete every task row (the table exists once a dispatcher process has started)."""
    with sql(setup) as connection:
        cursor = connection.cursor()
        if _table_exists(cursor, setup):
            statement = "DELETE FROM dispatcher_task"
            if not setup.database_url.startswith("sqlite:"):
                statement = "TRUNCATE dispatcher_task"
            cursor.execute(statement)


def task_ids(setup: Setup) -> set[str]:
    """The ids of every task row."""
    with sql(setup) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT id FROM dispatcher_task")
        return {row[0] for row in cursor.fetchall()}


def task_rows(setup: Setup, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Every task row with the given columns."""
    with sql(setup) as connection:
        cursor = connection.cursor()
        statement = f"SELECT {', '.join(columns)} FROM dispatcher_task"  # noqa: S608 - our names
        cursor.execute(statement)
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def purge_broker(setup: Setup, state_dir: Path) -> None:
    """Drop every message of the dispatcher's queue."""
    if setup.broker_url.startswith("filesystem:"):
        queue = state_dir / "broker" / "queue"
        if queue.is_dir():
            for message in queue.iterdir():
                message.unlink(missing_ok=True)
        return
    from kombu.connection import Connection

    with Connection(setup.broker_url) as connection:
        channel = connection.channel()
        with contextlib.suppress(Exception):  # the queue does not exist yet
            channel.queue_purge("pacifica.dispatcher_proxymod")


# --------------------------------------------------------------------------- the broker's side


def _message_id(message: Any) -> str:
    """The Celery task id of a kombu message (protocol 2: a header; protocol 1: the body)."""
    headers = message.headers or {}
    if headers.get("id"):
        return str(headers["id"])
    payload = message.decode() if hasattr(message, "decode") else {}
    return str(payload.get("id", "?")) if isinstance(payload, dict) else "?"


def _take_messages(app: Any, queue_name: str) -> list[str]:
    """Remove every message of the queue now there; the task ids in their headers.

    RabbitMQ: kombu's consumer (no ack, so nothing goes back). Redis and the filesystem broker:
    the transport's own stored envelopes, rebuilt into messages by its own channel (kombu's
    consumer takes one per round trip there, and lists the whole folder per message).
    """
    from kombu import Queue
    from kombu.utils.encoding import bytes_to_str
    from kombu.utils.json import loads

    ids: list[str] = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        transport = connection.transport.driver_type
        if transport in ("redis", "rediss"):
            client = channel.client
            for priority in channel.priority_steps:
                key = channel._q_for_pri(queue_name, priority)
                with client.pipeline() as pipe:
                    pipe.lrange(key, 0, -1).delete(key)
                    raw, _ = pipe.execute()
                ids += [_message_id(channel.Message(loads(bytes_to_str(r)), channel)) for r in raw]
            return ids
        if transport == "filesystem":
            folder = Path(channel.data_folder_in)
            for path in sorted(folder.glob(f"*.{queue_name}.msg")):
                try:
                    payload = loads(bytes_to_str(path.read_bytes()))
                except ValueError:  # still being written: taken on the next pass
                    continue
                ids.append(_message_id(channel.Message(payload, channel)))
                path.unlink()
            return ids

        def take(message: Any) -> None:
            ids.append(_message_id(message))

        queue = Queue(queue_name, durable=True, channel=channel)
        with connection.Consumer(queue, on_message=take, no_ack=True):
            while True:
                try:
                    connection.drain_events(timeout=0.5)
                except TimeoutError:
                    break
    return ids


def broker_task_ids(env: dict[str, str], expected: set[str], timeout: float) -> list[str]:
    """Take the dispatcher queue's messages until every ``expected`` id came (or ``timeout``).

    Messages may reach the broker after their 2xx (a batch publisher, or recovery within its
    grace), so this waits; it returns every task id seen, duplicates included.
    """
    from pacifica.dispatcher_proxymod.queue import create_celery_app
    from pacifica.dispatcher_proxymod.settings import load_settings

    settings = load_settings(env)
    app = create_celery_app(settings)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        seen += _take_messages(app, settings.queue_name)
        if expected <= set(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)
