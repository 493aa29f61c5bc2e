"""The connection to the task store's database: one per thread, re-opened after an error."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import peewee

database_proxy = peewee.DatabaseProxy()


def utcnow() -> datetime:
    """The current time as naive UTC, the form every timestamp is stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


def close_database() -> None:
    """Close this thread's connection, if any."""
    if database_proxy.obj is not None and not database_proxy.is_closed():
        database_proxy.close()


@contextmanager
def connection() -> Iterator[None]:
    """Use this thread's connection, opening it if needed.

    The connection stays open for the thread's next call (web threads live long); after a
    database error it is closed, so the next call connects afresh.
    """
    database: peewee.Database | None = database_proxy.obj
    if database is None:
        raise RuntimeError("the task store is not open: call open_database(settings) first")
    if database.is_closed():
        database.connect()
    try:
        yield
    except (peewee.OperationalError, peewee.InterfaceError):
        with suppress(Exception):
            database.close()
        raise


_P = ParamSpec("_P")
_R = TypeVar("_R")


def reconnecting(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` again once if the connection it used turned out to be dead.

    A long-lived thread keeps its connection between calls; after a database restart the
    first use fails and closes it (see :func:`connection`), and the second attempt connects
    afresh. Only for operations that are safe to repeat.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError):
            return function(*args, **kwargs)

    return wrapper


def ping() -> None:
    """Run a trivial query; raises ``peewee.PeeweeException`` when the database is down."""
    with connection():
        database_proxy.execute_sql("SELECT 1")
