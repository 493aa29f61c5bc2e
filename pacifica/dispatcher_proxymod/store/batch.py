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
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import peewee

from .models import Task
from .record import NewTask

#: The columns of an inserted row, in the statement's order (every one given, so a row's
#: values are the same list whatever PeeWee's defaults).
FIELDS: tuple[Any, ...] = (
    *(Task._meta.fields[name] for name in NewTask.__dataclass_fields__),
    Task.models_json,
    Task.attempts,
)


def _values(row: NewTask) -> tuple[Any, ...]:
    return (*row.columns().values(), Task.models_json.default, Task.attempts.default)


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
        """Insert ``rows`` (one per event key) in one autocommitted statement; the id stored
        for each key found: ours where the row was inserted, the earlier one's for a
        duplicate (a duplicate may be missing: the caller reads those rows)."""
        database: Any = self.database
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
