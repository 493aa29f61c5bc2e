"""Opening the store on a database an older version made: the missing columns are added."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any

import peewee
import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus

#: The columns the task table gained with states, history and cancel.
NEW_COLUMNS = {
    "reason",
    "stage",
    "input_transaction",
    "cancel_request",
    "retry_base",
}


def _old_database(settings: Settings) -> peewee.Database:
    """The task table as the previous version created it, with one waiting task in it."""
    store.open_database(settings)
    database: peewee.Database = store.database_proxy.obj
    with database.connection_context():
        database.drop_tables([store.Task, store.Attempt])
        old_fields = {
            name: field.clone()
            for name, field in store.Task._meta.fields.items()
            if name not in NEW_COLUMNS and name != "id"
        }
        old_task = type(
            "OldTask",
            (peewee.Model,),
            {
                "id": peewee.CharField(max_length=36, primary_key=True),
                **old_fields,
                "Meta": type("Meta", (), {"database": database, "table_name": "dispatcher_task"}),
            },
        )
        database.create_tables([old_task])
        now = store.utcnow()
        old_task.create(
            id="00000000-0000-4000-8000-000000000001",
            event_key="k" * 64,
            source="old",
            event_id="old-1",
            event_type="t",
            specversion="1.0",
            event_json="{}",
            status=TaskStatus.FAILED.value,
            created=now,
            updated=now,
        )
    store.close_database()
    return database


def test_an_old_table_gains_the_new_columns(
    settings: Settings, example_event: dict[str, Any]
) -> None:
    database = _old_database(settings)
    with database.connection_context():
        before = {c.name for c in database.get_columns("dispatcher_task")}
    assert not NEW_COLUMNS & before

    store.open_database(settings)
    store.open_database(settings)  # a second start finds nothing to do
    with store.connection():
        after = {c.name for c in database.get_columns("dispatcher_task")}
        indexed = {
            column for index in database.get_indexes("dispatcher_task") for column in index.columns
        }
    assert after >= NEW_COLUMNS
    assert "input_transaction" in indexed
    old = store.get_task("00000000-0000-4000-8000-000000000001")
    assert old is not None and old.reason is None and old.retry_base is None
    assert store.summary(old)["state"] == "failed"
    assert store.retry_task(old.id).attempt == 1

    event = parse_http({"Content-Type": "application/json"}, json.dumps(example_event).encode())
    new = store.record_event(event, TaskStatus.ACCEPTED).task
    assert store.get_task(new.id).input_transaction == "1101"  # type: ignore[union-attr]
    store.close_database()


def test_an_old_mysql_table_keeps_events_over_64_kib(
    settings: Settings, example_event: dict[str, Any]
) -> None:
    database = _old_database(settings)
    if not isinstance(database, peewee.MySQLDatabase):
        pytest.skip("only MySQL/MariaDB's TEXT is limited (64 KiB)")
    with database.connection_context():
        database.execute_sql("ALTER TABLE dispatcher_task MODIFY event_json TEXT NOT NULL")
    store.open_database(settings)
    with store.connection():
        types = {c.name: c.data_type.lower() for c in database.get_columns("dispatcher_task")}
    assert types["event_json"] == types["error_traceback"] == "longtext"
    large = dict(example_event, eventID="large", padding="x" * 100_000)
    event = parse_http({"Content-Type": "application/json"}, json.dumps(large).encode())
    task = store.record_event(event, TaskStatus.ACCEPTED).task
    assert len(store.get_task(task.id).event_json) > 100_000  # type: ignore[union-attr]
    store.close_database()


def test_a_new_sqlite_file_switches_to_wal_while_another_holds_the_write_lock(
    settings: Settings,
) -> None:
    """SQLite refuses the switch at once (no busy wait) while another process writes:
    opening waits for the lock instead of failing the start."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the write-ahead log is SQLite's")
    path = settings.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (id INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, holder.execute, ("COMMIT",))
    release.start()
    try:
        started = time.monotonic()
        store.open_database(settings)
        waited = time.monotonic() - started
        with store.connection():
            mode = store.database_proxy.obj.execute_sql("PRAGMA journal_mode").fetchone()[0]
        store.close_database()
    finally:
        release.join()
        holder.close()
    assert mode == "wal"
    assert waited >= 0.4  # it waited for the other writer rather than skipping the switch
