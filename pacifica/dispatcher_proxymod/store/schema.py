"""Opening the task store: connect, create the tables if missing, add the columns they lack.

A database made by an older version gains the new columns (all nullable or with a default)
and their indexes at start, with PeeWee's ``playhouse.migrate``, on SQLite, PostgreSQL and
MariaDB alike. Web and workers start together, so each step tolerates another process having
done it first.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import peewee
import pymysql
from playhouse.db_url import connect as connect_url
from playhouse.migrate import SchemaMigrator, migrate

from ..settings import Settings
from . import tallies
from .batch import timed_out
from .charts import TaskChart
from .db import database_proxy
from .logs import TaskLog
from .models import Attempt, LongTextField, Task

log = logging.getLogger(__name__)

#: Every table of the store, created at start when missing.
TABLES: tuple[type[peewee.Model], ...] = (Task, Attempt, TaskChart, TaskLog, *tallies.TABLES)
#: How long a SQLite connection waits for another's write lock.
SQLITE_BUSY_SECONDS = 30
#: The tables whose rows belong to one task (``task_id``): deleted with it.
TASK_TABLES = (Attempt, TaskChart, TaskLog)


def open_database(settings: Settings) -> peewee.Database:
    """Connect the tables to ``settings.database_url``; create and upgrade them if needed."""
    url = settings.database_url
    database: peewee.Database
    if url.startswith("sqlite:"):
        database = connect_url(
            url,
            pragmas={"busy_timeout": SQLITE_BUSY_SECONDS * 1000, "synchronous": "normal"},
            timeout=SQLITE_BUSY_SECONDS,
        )
    elif url.startswith(("mysql", "mariadb")):
        database = connect_url(
            url,
            # count matched rows, so a claim or heartbeat in the same instant still counts
            client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
            # microseconds, so "newest first" and heartbeats keep their order
            field_types={"DATETIME": "DATETIME(6)", "LONGTEXT": "LONGTEXT"},
        )
    else:
        database = connect_url(url)
    database_proxy.initialize(database)
    with database.connection_context():
        if isinstance(database, peewee.SqliteDatabase):
            _use_write_ahead_log(database, time.monotonic() + SQLITE_BUSY_SECONDS)
        for table in TABLES:
            _create(database, table)
            _add_missing_columns(database, table)
            _widen_long_text(database, table)
        tallies.install(database)  # the summary /metrics reads, and its triggers
    return database


def _use_write_ahead_log(database: peewee.SqliteDatabase, deadline: float) -> None:
    """Switch the SQLite file to WAL (a property of the file, so once per start is enough).

    SQLite answers "database is locked" at once, without waiting its busy timeout, when
    another connection holds a write lock during the switch (two processes opening a new
    file together): try again until ``deadline``.
    """
    untyped: Any = database  # (PeeWee's execute_sql has no annotations)
    while True:
        try:
            untyped.execute_sql("PRAGMA journal_mode = wal")
            return
        except peewee.OperationalError as exc:
            if not timed_out(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _create(database: peewee.Database, table: type[peewee.Model]) -> None:
    try:
        database.create_tables([table], safe=True)
    except peewee.DatabaseError:
        # another process may have won the race: "IF NOT EXISTS" is not atomic on PostgreSQL
        database.rollback()
        if not database.table_exists(table._meta.table_name):
            raise


def _add_missing_columns(database: peewee.Database, table: type[peewee.Model]) -> None:
    """Add the columns (and their single-column indexes) an older database lacks."""
    name = table._meta.table_name
    present = {column.name for column in database.get_columns(name)}
    missing = [f for f in table._meta.sorted_fields if f.column_name not in present]
    if not missing:
        return
    migrator = SchemaMigrator.from_database(database)
    for field in missing:
        log.info("adding column %s.%s to the task store", name, field.column_name)
        try:
            with database.atomic():
                operations = [migrator.add_column(name, field.column_name, field)]
                migrate(*operations)
        except peewee.DatabaseError:
            database.rollback()  # another process added it first
            if field.column_name not in {c.name for c in database.get_columns(name)}:
                raise


def _widen_long_text(database: peewee.Database, table: type[peewee.Model]) -> None:
    """On MySQL/MariaDB, make the long text columns of an older table ``LONGTEXT`` (its
    ``TEXT`` holds 64 KiB: a larger event or traceback was refused)."""
    if not isinstance(database, peewee.MySQLDatabase):
        return
    name = table._meta.table_name
    types = {column.name: column.data_type.lower() for column in database.get_columns(name)}
    for field in table._meta.sorted_fields:
        if isinstance(field, LongTextField) and types.get(field.column_name) == "text":
            log.info("widening column %s.%s to LONGTEXT", name, field.column_name)
            null = "NULL" if field.null else "NOT NULL"
            untyped: Any = database  # (PeeWee's execute_sql has no annotations)
            untyped.execute_sql(
                f"ALTER TABLE `{name}` MODIFY `{field.column_name}` LONGTEXT {null}"
            )
