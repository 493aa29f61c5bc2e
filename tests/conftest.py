"""Shared fixtures: settings on a temporary state dir, the store on the database under test.

The database and broker come from the environment, so one suite runs on each setup:
``TEST_DATABASE_URL`` (default: a SQLite file per test) and ``TEST_BROKER_URL`` (default: the
embedded filesystem broker). ``.ci/run`` runs the suite on SQLite + embedded, PostgreSQL +
RabbitMQ and PostgreSQL + Redis, and the store tests on MariaDB too.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.settings import ModelLimits, Settings
from pacifica.dispatcher_proxymod.store import tallies

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXAMPLE_DATA = EXAMPLES / "data"
EXAMPLE_EVENT = EXAMPLES / "event.json"
#: The top-level names of a CloudEvents 0.1 event, in the order Notifications delivers them.
DELIVERY_KEYS = (
    "cloudEventsVersion",
    "eventType",
    "source",
    "eventID",
    "eventTime",
    "extensions",
    "contentType",
    "data",
)
#: the sample Notifications delivery; the reference folder lies beside the checkout
#: (shared/ next to the repository)
DELIVERED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "delivered-event.json"


def delivered_event() -> dict[str, Any]:
    """The sample Pacifica Notifications delivery, or an equivalent when it is absent."""
    if DELIVERED.is_file():
        document: dict[str, Any] = json.loads(DELIVERED.read_text(encoding="utf-8"))
        return document
    return {
        "cloudEventsVersion": "0.1",
        "eventType": "org.pacifica.metadata.ingest",
        "source": "http://metadata.pacifica.org/transactions?_id=1008",
        "eventID": "metadata.ingest.1008",
        "eventTime": "2026-11-27T23:24:42",
        "extensions": {},
        "contentType": "application/json",
        "data": [
            {"destinationTable": "Transactions.submitter", "value": 10},
            {"destinationTable": "Transactions.project", "value": "1234a"},
            {"destinationTable": "Transactions.instrument", "value": 54},
            {"destinationTable": "TransactionKeyValue", "key": "proxymod.task", "value": "advance"},
            {"destinationTable": "TransactionKeyValue", "key": "proxymod.version", "value": "1"},
            {
                "_id": 1016,
                "ctime": "2026-11-27T23:24:41",
                "destinationTable": "Files",
                "hashsum": "fe88bc079377c8db858f1b666061a5d545286f14",
                "hashtype": "sha1",
                "mimetype": "text/x-python",
                "mtime": "2026-11-27T23:24:41",
                "name": "model.py",
                "size": 42,
                "subdir": "models",
            },
            {"destinationTable": "Transactions._id", "value": 1008},
        ],
    }


def edited_event(
    event: Mapping[str, Any],
    event_id: str | None = None,
    values: Mapping[str, Any] | None = None,
    renames: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A copy of ``event``: another eventID, TransactionKeyValue ``values`` set, keys renamed.

    ``renames`` maps a key to the name it is given instead (a misspelling, say); ``event``
    itself is left as it was.
    """
    edited: dict[str, Any] = copy.deepcopy(dict(event))
    if event_id is not None:
        edited["eventID"] = event_id
    for entry in edited["data"]:
        key = entry.get("key")
        if values and key in values:
            entry["value"] = values[key]
        if renames and key in renames:
            entry["key"] = renames[key]
    return edited


def database_url(tmp_path: Path) -> str:
    """The database under test: ``TEST_DATABASE_URL`` or a fresh SQLite file."""
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'tasks.sqlite3'}"


def broker_url() -> str:
    """The broker under test: ``TEST_BROKER_URL`` or the embedded filesystem broker."""
    return os.environ.get("TEST_BROKER_URL") or "filesystem://"


@pytest.fixture(scope="session", autouse=True)
def _stop_cherrypy_engine() -> Iterator[None]:
    """Stop CherryPy's engine if a test started it (tests/httpserver.py)."""
    yield
    import cherrypy

    if cherrypy.engine.state == cherrypy.engine.states.STARTED:
        cherrypy.engine.exit()


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """A command run in-process (cli.main) configures logging: put the root handlers back,
    so no later test logs into a capture that is closed by then."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test: its own state, work and output folders, local transfer."""
    state = tmp_path / "state"
    return Settings(
        database_url=database_url(tmp_path),
        broker_url=broker_url(),
        state_dir=state,
        work_dir=state / "work",
        transfer="local",
        data_dir=EXAMPLE_DATA,
        output_dir=tmp_path / "results",
        limits=ModelLimits(timeout_seconds=60, cpu_seconds=60, memory_mb=1024),
        heartbeat_seconds=0.5,
        stale_after_seconds=5,
        recovery_interval_seconds=1,
        retry_backoff_seconds=0.2,
    )


@pytest.fixture
def open_store(settings: Settings) -> Iterator[Settings]:
    """The task store opened on the database under test, emptied first."""
    store.open_database(settings)
    with store.connection():
        store.Task.delete().execute()
        for table in store.TASK_TABLES:
            table.delete().execute()
        tallies.Tally.update(count=0, total=0.0).execute()
    yield settings
    store.close_database()


@pytest.fixture
def example_event() -> dict[str, Any]:
    """The example event as a fresh dict."""
    document: dict[str, Any] = json.loads(EXAMPLE_EVENT.read_text())
    return document


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A private copy of the example data folder."""
    target = tmp_path / "data"
    shutil.copytree(EXAMPLE_DATA, target)
    return target
