"""Large events through the intake: every character kept (streamed by ``COPY`` on PostgreSQL),
one copy of the text at a time, and nothing kept once their callers have their answer.

The database is ``TEST_DATABASE_URL`` (default SQLite); the memory test needs PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import subprocess
import sys
import textwrap
import time
import weakref
from typing import Any

import peewee
import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import Event, parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.store import Intake, NewTask
from pacifica.dispatcher_proxymod.store.batch import COPY_CHARS, CopyStream

DEADLINE = 60.0
#: Every character ``COPY``'s text format escapes, and some it must leave alone.
AWKWARD = 'tab\there\nnewline\r\nback\\slash \\N \\. quote\' "dq" é 漢 🙂 \x7f end'


def _large_event(document: dict[str, Any], event_id: str, chars: int) -> Event:
    padded = dict(document, eventID=event_id)
    padded["data"] = [
        *document["data"],
        {"destinationTable": "TransactionKeyValue", "key": "padding", "value": ""},
    ]
    text = json.dumps(padded)
    padded["data"][-1]["value"] = (AWKWARD * (chars // len(AWKWARD) + 1))[: chars - len(text)]
    return parse_http({"Content-Type": "application/json"}, json.dumps(padded).encode())


def _awkward_row(event: Event) -> NewTask:
    row = store.new_task(event, TaskStatus.UNPROCESSABLE, reason=f"why: {AWKWARD}")
    return dataclasses.replace(row, error_message=AWKWARD, event_time=None)


def test_the_copy_stream_is_copy_text() -> None:
    """Tabs between columns, a newline after each row, ``\\N`` for NULL, specials escaped."""
    document = json.loads(json.dumps({"eventID": "x", "data": []}))
    row = store.new_task(
        Event.from_json(
            json.dumps(
                {
                    "cloudEventsVersion": "0.1",
                    "eventType": "t",
                    "source": "s",
                    "eventID": "e",
                    "data": document["data"],
                }
            )
        ),
        TaskStatus.ACCEPTED,
    )
    row = dataclasses.replace(row, error_message="a\tb\nc\\d\re")
    stream = CopyStream([row, row])
    text = b"".join(iter(lambda: stream.read(8192), b"")).decode()
    lines = text.split("\n")
    assert lines[2:] == [""] and lines[0] == lines[1]
    columns = lines[0].split("\t")
    assert "a\\tb\\nc\\\\d\\re" in columns and "\\N" in columns
    refused = CopyStream([dataclasses.replace(row, error_message="nul\x00")])
    with pytest.raises(ValueError, match="NUL"):
        b"".join(iter(lambda: refused.read(8192), b""))


def test_large_events_keep_every_character_and_their_duplicates(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    intake = Intake(statement_timeout=DEADLINE)
    try:
        rows = [
            _awkward_row(_large_event(example_event, f"large-{n}", COPY_CHARS + 10_000))
            for n in range(2)
        ]
        recorded = [intake.record(row, DEADLINE) for row in rows]
        again = intake.record(_awkward_row(_large_event(example_event, "large-0", 2 * COPY_CHARS)))
    finally:
        assert intake.close(DEADLINE)
    assert all(r.created for r in recorded)
    assert not again.created and again.task.id == rows[0].id  # the first row's, as an INSERT
    with store.connection():
        for row in rows:
            stored = store.Task.get_by_id(row.id)
            for name, value in row.columns().items():
                assert getattr(stored, name) == value, name
            assert stored.models_json == store.Task.models_json.default
            assert stored.attempts == store.Task.attempts.default


def test_the_writer_keeps_no_batch_once_it_was_answered(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    intake = Intake(statement_timeout=DEADLINE)
    try:
        row = store.new_task(_large_event(example_event, "kept", COPY_CHARS), TaskStatus.ACCEPTED)
        recorded = intake.record(row, DEADLINE)
        assert recorded.created
        gone = weakref.ref(row)
        del row, recorded
        deadline = time.monotonic() + DEADLINE
        while gone() is not None:  # the writer waits for the next batch meanwhile
            assert time.monotonic() < deadline, "the writer still holds the last batch's row"
            gc.collect()
            time.sleep(0.01)
    finally:
        assert intake.close(DEADLINE)


class _Refused(Exception):
    """What psycopg2 raises for a role without the TEMPORARY privilege."""

    pgcode = "42501"


def test_without_the_temporary_privilege_large_events_go_by_insert(
    open_store: Settings,
    example_event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not open_store.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL)")
    tried: list[str] = []
    execute_sql = peewee.PostgresqlDatabase.execute_sql

    def refusing(database: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql.startswith("CREATE TEMPORARY TABLE"):
            tried.append(sql)
            raise peewee.ProgrammingError("permission denied to create temporary tables") from (
                _Refused()
            )
        return execute_sql(database, sql, *args, **kwargs)

    monkeypatch.setattr(peewee.PostgresqlDatabase, "execute_sql", refusing)
    intake = Intake(statement_timeout=DEADLINE)
    try:
        rows = [
            _awkward_row(_large_event(example_event, f"no-temp-{n}", COPY_CHARS + 1))
            for n in range(2)
        ]
        assert all(intake.record(row, DEADLINE).created for row in rows)
    finally:
        assert intake.close(DEADLINE)
    assert len(tried) == 1  # asked once, then the INSERT for good
    assert "TEMPORARY privilege" in caplog.text
    with store.connection():
        assert {store.Task.get_by_id(row.id).event_json for row in rows} == {
            row.event_json for row in rows
        }


_PEAK_PROBE = """
import json, sys
from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.cli import limit_heap_growth
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus

def mib(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024

limit_heap_growth()  # as the web server: large buffers are mapped, and unmapped when freed
store.open_database(Settings(database_url=sys.argv[1]))
intake = store.Intake(statement_timeout=60.0)
document = json.loads(sys.argv[2])
for number in range(3):
    document["eventID"] = f"peak-{number}"
    document["data"][-1]["value"] = "x" * (4 * 1024 * 1024)
    row = store.new_task(
        parse_http({"Content-Type": "application/json"}, json.dumps(document).encode()),
        TaskStatus.ACCEPTED,
    )
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")  # VmHWM := VmRSS
    before = mib("VmRSS")
    assert intake.record(row, 60.0).created
    print(round(mib("VmHWM") - before, 1))
intake.close(60.0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/clear_refs")
def test_a_4_mib_event_costs_postgresql_no_copy_of_its_text(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    """psycopg2 built a 4 MiB event's INSERT whole: about 16 MiB beside the row at once."""
    if not open_store.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL)")
    example_event["data"].append({"destinationTable": "TransactionKeyValue", "key": "p"})
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_PEAK_PROBE),
            open_store.database_url,
            json.dumps(example_event),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    peaks = [float(line) for line in done.stdout.split()]
    assert len(peaks) == 3 and max(peaks[1:]) < 4.0, f"MiB beyond the row while recording: {peaks}"
