"""The statements of the store's group commit (:mod:`.intake`), per database.

One multi-row ``INSERT`` per batch, built by PeeWee from the model, with each database's
conflict clause on ``event_key``:

* PostgreSQL, SQLite: ``ON CONFLICT (event_key) DO NOTHING RETURNING id, event_key``: the
  rows inserted come back, a duplicate does not.
* MariaDB: ``ON DUPLICATE KEY UPDATE id = id RETURNING id, event_key`` (10.5 and later): a
  duplicate comes back with the earlier row's id. Never ``INSERT IGNORE``, which would store a
  bad value truncated instead of refusing the row.
* MySQL (no ``RETURNING``): the same ``INSERT``, then ``SELECT id, event_key`` for the keys.

PeeWee's SQL for a batch is built once per number of rows and its text kept: the values of the
next batches are converted by the same fields (``db_value``), and a text is kept only once the
values were seen to equal PeeWee's own. Each new connection gets its statement limit:
PostgreSQL ``statement_timeout``, MariaDB ``max_statement_time``, MySQL
``innodb_lock_wait_timeout``, SQLite ``busy_timeout`` (its wait for another writer's lock).

On PostgreSQL a batch that holds an event over :data:`COPY_CHARS` is streamed instead (see
:class:`CopyStream`): ``COPY`` into a temporary table, then the same ``INSERT ... SELECT ... ON
CONFLICT ... RETURNING``, in one transaction. psycopg2 builds an INSERT's text whole (the value
encoded, escaped, the statement, libpq's copy of it): about 16 MiB at once beside a 4 MiB
event, which set the web process's peak RSS; the stream holds 64 KiB of it at a time.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import peewee

from .models import Task
from .record import NewTask

log = logging.getLogger(__name__)

#: The columns of an inserted row, in the statement's order (every one given, so a row's
#: values are the same list whatever PeeWee's defaults).
FIELDS: tuple[Any, ...] = (
    *(Task._meta.fields[name] for name in NewTask.__dataclass_fields__),
    Task.models_json,
    Task.attempts,
)


def _values(row: NewTask) -> tuple[Any, ...]:
    return (*row.columns().values(), Task.models_json.default, Task.attempts.default)


#: PostgreSQL: a batch holding an event's JSON longer than this is streamed by ``COPY`` (module
#: doc); a batch of small events keeps its one INSERT (at most ``intake.BATCH_CHARS`` of them).
COPY_CHARS = 256 * 1024
#: The session's temporary table a streamed batch goes through (emptied at every commit).
STAGING_TABLE = "dispatcher_task_incoming"
#: psycopg2's errors as PeeWee's (as ``execute_sql`` raises them), around ``copy_expert``
#: (``EXCEPTIONS`` is missing from the stubs).
_AS_PEEWEE_ERRORS = peewee.ExceptionWrapper(peewee.EXCEPTIONS)  # type: ignore[attr-defined]
#: PostgreSQL's ``insufficient_privilege``: the role lacks the TEMPORARY privilege.
_INSUFFICIENT_PRIVILEGE = "42501"
#: Characters of one value escaped and sent at a time.
_PIECE_CHARS = 64 * 1024
#: ``COPY``'s text format: a backslash, newline, carriage return and tab (its delimiter) are
#: escaped with a backslash; ``\N`` is NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


class CopyStream:
    """The rows of a batch as ``COPY ... FROM STDIN`` text, read in pieces (psycopg2's
    ``copy_expert`` calls :meth:`read` until it answers ``b""``)."""

    def __init__(self, rows: list[NewTask]) -> None:
        self._pieces = self._text(rows)

    def read(self, size: int = -1) -> bytes:
        return next(self._pieces, b"")

    def _text(self, rows: list[NewTask]) -> Iterator[bytes]:
        for row in rows:
            for number, (field, value) in enumerate(zip(FIELDS, _values(row), strict=True)):
                if number:
                    yield b"\t"
                yield from _copy_value(field.db_value(value))
            yield b"\n"


def _copy_value(value: Any) -> Iterator[bytes]:
    """One column's value in ``COPY``'s text format, a piece at a time."""
    if value is None:
        yield b"\\N"
        return
    if isinstance(value, datetime):
        value = value.isoformat(" ")
    elif isinstance(value, bool):
        value = "t" if value else "f"
    text = str(value)
    for start in range(0, len(text), _PIECE_CHARS):
        piece = text[start : start + _PIECE_CHARS]
        if "\x00" in piece:  # as psycopg2 refuses it in an INSERT (the web answers 400)
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        yield piece.translate(_COPY_ESCAPES).encode("utf-8")


class BatchInsert:
    """The INSERT of a batch on ``database`` (one writer thread uses it)."""

    def __init__(
        self, database: peewee.Database, statement_timeout: float, returning: bool | None = None
    ) -> None:
        self.database = database
        self.statement_timeout = statement_timeout
        #: whether the INSERT returns its rows (None: found out at the first connection)
        self.returning = returning
        self._mariadb: bool | None = None
        #: whether large batches may go by ``COPY`` (PostgreSQL; False once refused)
        self.copies = True
        self._texts: dict[int, str] = {}

    def prepare(self) -> None:
        """Set the statement limit on a new connection (and learn what the server is)."""
        database: Any = self.database
        millis = max(1, round(self.statement_timeout * 1000))
        if isinstance(self.database, peewee.PostgresqlDatabase):
            statement = f"SET statement_timeout = {millis}"
            self.returning = True if self.returning is None else self.returning
        elif isinstance(self.database, peewee.MySQLDatabase):
            if self._mariadb is None:
                version = str(database.execute_sql("SELECT VERSION()").fetchone()[0])
                self._mariadb = "mariadb" in version.lower()
                if self.returning is None:
                    self.returning = self._mariadb and _version(version) >= (10, 5)
            if self._mariadb:  # a limit on every statement
                statement = f"SET SESSION max_statement_time = {millis / 1000}"
            else:  # MySQL's max_execution_time is for SELECT only: bound the lock waits
                statement = f"SET SESSION innodb_lock_wait_timeout = {math.ceil(millis / 1000)}"
        else:
            statement = f"PRAGMA busy_timeout = {millis}"
            if self.returning is None:
                self.returning = sqlite3.sqlite_version_info >= (3, 35, 0)
        database.execute_sql(statement)

    def execute(self, rows: list[NewTask]) -> dict[str, str]:
        """Insert ``rows`` (one per event key) in one autocommitted statement (a large batch on
        PostgreSQL: one transaction, see :meth:`_copy`); the id stored
        for each key found: ours where the row was inserted, the earlier one's for a
        duplicate (a duplicate may be missing: the caller reads those rows)."""
        database: Any = self.database
        cursor = self._copy(rows) if self._streams(rows) else None
        if cursor is None:
            cursor = database.execute_sql(*self._statement(rows))
        if self.returning:
            return {key: task_id for task_id, key in cursor.fetchall()}
        keys = [row.event_key for row in rows]
        found: Any = (
            Task.select(Task.id, Task.event_key)
            .where(Task.event_key.in_(keys))
            .tuples()
            .execute(self.database)
        )
        return {key: task_id for task_id, key in found}

    def _streams(self, rows: list[NewTask]) -> bool:
        """Whether ``rows`` go by ``COPY`` (PostgreSQL through psycopg2, UTF-8, large events)."""
        if not self.copies or not isinstance(self.database, peewee.PostgresqlDatabase):
            return False
        if max(len(row.event_json) for row in rows) <= COPY_CHARS:
            return False
        database: Any = self.database
        connection = database.connection()
        # psycopg2's copy_expert, and a connection that reads the stream's bytes as UTF-8
        copies = hasattr(connection.cursor(), "copy_expert")
        return copies and getattr(connection, "encoding", "") == "UTF8"

    def _copy(self, rows: list[NewTask]) -> Any:
        """``COPY`` the rows into the session's staging table, then insert them from it as
        the one INSERT would (same conflict clause, same RETURNING); one transaction.

        None (and no more ``COPY``) when the role may not create a temporary table.
        """
        database: Any = self.database
        table = Task._meta.table_name
        columns = ", ".join(f'"{field.column_name}"' for field in FIELDS)
        returning = ' RETURNING "id", "event_key"' if self.returning else ""
        try:
            with database.atomic():
                database.execute_sql(
                    f'CREATE TEMPORARY TABLE IF NOT EXISTS "{STAGING_TABLE}" '
                    f'(LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
                )
                with _AS_PEEWEE_ERRORS:
                    database.connection().cursor().copy_expert(
                        f'COPY "{STAGING_TABLE}" ({columns}) FROM STDIN', CopyStream(rows)
                    )
                return database.execute_sql(  # (names of the model and constants only)
                    f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{STAGING_TABLE}" '  # noqa: S608
                    f'ON CONFLICT ("event_key") DO NOTHING{returning}'
                )
        except peewee.ProgrammingError as exc:
            cause = exc.__cause__ or exc.__context__
            if getattr(cause, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
                raise
        log.warning(
            "the database role may not create temporary tables (TEMPORARY privilege): large "
            "events go by INSERT, at about four times their size in web memory"
        )
        self.copies = False
        return None

    def _statement(self, rows: list[NewTask]) -> tuple[str, list[Any]]:
        values = [
            field.db_value(value)
            for row in rows
            for field, value in zip(FIELDS, _values(row), strict=True)
        ]
        text = self._texts.get(len(rows))
        if text is not None:
            return text, values
        query = Task.insert_many([_values(row) for row in rows], fields=FIELDS)
        if isinstance(self.database, peewee.MySQLDatabase):
            query = query.on_conflict(update={Task.id: Task.id})
        else:
            query = query.on_conflict(conflict_target=[Task.event_key], action="NOTHING")
        if self.returning:
            query = query.returning(Task.id, Task.event_key)
        context: Any = self.database.get_sql_context()
        text, params = context.sql(query).query()
        if params == values:
            self._texts[len(rows)] = text
        return text, params


def _version(text: str) -> tuple[int, ...]:
    """``10.11.19-MariaDB-...`` -> (10, 11, 19)."""
    numbers = text.split("-", 1)[0].split(".")
    return tuple(int(n) for n in numbers if n.isdigit())


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is a statement timeout or lock wait (not worth repeating at once)."""
    cause = exc.__cause__ or exc.__context__
    if getattr(cause, "pgcode", None) in ("57014", "55P03"):  # query canceled, lock timeout
        return True
    if (getattr(cause, "sqlite_errorcode", 0) or 0) & 0xFF in (5, 6):  # SQLITE_BUSY, _LOCKED
        return True
    args: tuple[Any, ...] = getattr(cause, "args", ())
    # MariaDB statement time exceeded, lock wait timeout; MySQL's execution time exceeded
    return bool(args) and args[0] in (1969, 1205, 3024)
