"""The JSON shape of a task, written once: ``GET /`` entries, ``GET /get/<id>``, the CLI and the
OpenAPI schemas (:mod:`..openapi`) are all derived from :data:`TASK_FIELDS`.

Each :class:`Field` names its JSON member, its OpenAPI schema, how to read it from a row, and
whether the task list shows it too (the record always does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events.event import parse_legacy
from ..states import Stage, TaskState
from .lifecycle import history
from .models import Attempt, Task


def ref(name: str) -> dict[str, str]:
    """An OpenAPI reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


UUID_SCHEMA = {"type": "string", "format": "uuid"}
TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "description": "UTC, ISO 8601 with milliseconds and a Z",
}
NULLABLE_STRING = {"type": "string", "nullable": True}


def _nullable_enum(values: list[str], description: str) -> dict[str, Any]:
    """A string of ``values`` or null (inline: OpenAPI 3.0 ignores siblings of a $ref)."""
    return {"type": "string", "nullable": True, "enum": [*values, None], "description": description}


def _nullable_timestamp(description: str) -> dict[str, Any]:
    return {**TIMESTAMP, "nullable": True, "description": description}


def iso(value: datetime | None) -> str | None:
    """A stored (naive UTC) timestamp as ISO 8601 with milliseconds and a Z."""
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


@dataclass(frozen=True)
class Field:
    """One member of the task JSON."""

    name: str
    schema: dict[str, Any]
    value: Callable[[Task], Any]
    in_summary: bool = False


def _event(task: Task) -> dict[str, Any]:
    event = json.loads(task.event_json)
    if "specversion" not in event and "cloudEventsVersion" in event:  # kept as received
        normalised = parse_legacy(event)
        event = {
            "datacontenttype": normalised.datacontenttype,
            "dataschema": normalised.dataschema,
            "extensions": dict(normalised.extensions),
            "data": normalised.data,
        }
    return {
        "specversion": task.specversion,
        "id": task.event_id,
        "source": task.source,
        "type": task.event_type,
        "time": task.event_time,
        "datacontenttype": event.get("datacontenttype"),
        "dataschema": event.get("dataschema"),
        "extensions": event.get("extensions", {}),
        "data": event.get("data"),
    }


_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "the event as received, with CloudEvents 1.0 names",
    "additionalProperties": False,
    "required": [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "dataschema",
        "extensions",
        "data",
    ],
    "properties": {
        "specversion": {"type": "string", "enum": ["0.1", "0.3", "1.0"]},
        "id": {"type": "string"},
        "source": {"type": "string"},
        "type": {"type": "string"},
        "time": NULLABLE_STRING,
        "datacontenttype": NULLABLE_STRING,
        "dataschema": NULLABLE_STRING,
        "extensions": {"type": "object"},
        "data": {"nullable": True},
    },
}

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "description": "the last error in full (reason is its first line)",
    "additionalProperties": False,
    "required": ["type", "message", "traceback"],
    "properties": {
        "type": {"type": "string"},
        "message": NULLABLE_STRING,
        "traceback": NULLABLE_STRING,
    },
}


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    """One entry of a task's ``history``."""
    return {
        "number": attempt.number,
        "worker": attempt.worker,
        "started": iso(attempt.started),
        "finished": iso(attempt.finished),
        "state": attempt.state,
        "reason": attempt.reason,
    }


ATTEMPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "one run of the task by a worker",
    "additionalProperties": False,
    "required": ["number", "worker", "started", "finished", "state", "reason"],
    "properties": {
        "number": {"type": "integer", "minimum": 1},
        "worker": NULLABLE_STRING,
        "started": TIMESTAMP,
        "finished": _nullable_timestamp("null while the attempt runs"),
        "state": _nullable_enum(
            [state.value for state in TaskState], "how it ended; null while it runs"
        ),
        "reason": {**NULLABLE_STRING, "description": "why it ended so, e.g. worker lost"},
    },
}

TASK_FIELDS: tuple[Field, ...] = (
    Field("taskID", UUID_SCHEMA, lambda t: t.id, True),
    Field("status", ref("TaskStatus"), lambda t: t.status, True),
    Field("state", ref("TaskState"), lambda t: t.state.value, True),
    Field(
        "reason",
        {**NULLABLE_STRING, "description": "one line saying what went wrong, or null"},
        lambda t: t.reason,
        True,
    ),
    Field(
        "stage",
        _nullable_enum([stage.value for stage in Stage], "where it failed; null otherwise"),
        lambda t: t.stage,
        True,
    ),
    Field("source", {"type": "string"}, lambda t: t.source, True),
    Field("eventID", {"type": "string"}, lambda t: t.event_id, True),
    Field(
        "inputTransaction",
        {**NULLABLE_STRING, "description": "the event's Transactions._id, or null"},
        lambda t: t.input_transaction,
        True,
    ),
    Field(
        "route",
        {**NULLABLE_STRING, "description": "the route that matched; null when none did"},
        lambda t: t.route,
    ),
    Field("event", _EVENT_SCHEMA, _event),
    Field(
        "error",
        _ERROR_SCHEMA,
        lambda t: (
            None
            if t.error_type is None
            else {"type": t.error_type, "message": t.error_message, "traceback": t.error_traceback}
        ),
    ),
    Field(
        "models", {"type": "array", "items": ref("ModelRun")}, lambda t: json.loads(t.models_json)
    ),
    Field(
        "result",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["location", "transaction"],
            "properties": {
                "location": NULLABLE_STRING,
                "transaction": {"type": "integer", "nullable": True},
            },
        },
        lambda t: {"location": t.result_location, "transaction": t.result_transaction},
    ),
    Field("attempts", {"type": "integer", "minimum": 0}, lambda t: t.attempts),
    Field(
        "attempt",
        {
            "type": "integer",
            "minimum": 0,
            "description": "the number of the current or last attempt (0: never run)",
        },
        lambda t: t.attempts,
        True,
    ),
    Field("worker", NULLABLE_STRING, lambda t: t.worker),
    Field("created", TIMESTAMP, lambda t: iso(t.created), True),
    Field("updated", TIMESTAMP, lambda t: iso(t.updated), True),
    Field(
        "queued",
        _nullable_timestamp("when its message last reached the broker"),
        lambda t: iso(t.queued_at),
    ),
    Field(
        "started", _nullable_timestamp("when its last attempt started"), lambda t: iso(t.started)
    ),
    Field(
        "finished",
        _nullable_timestamp("when it ended; null while waiting or running"),
        lambda t: iso(t.finished),
        True,
    ),
    Field(
        "history",
        {"type": "array", "items": ref("Attempt"), "description": "one entry per attempt"},
        lambda t: [attempt_json(attempt) for attempt in history(t.id)],
    ),
)

SUMMARY_FIELDS = tuple(field for field in TASK_FIELDS if field.in_summary)


def summary(task: Task) -> dict[str, Any]:
    """The short form of a task, as the task list shows it."""
    return {field.name: field.value(task) for field in SUMMARY_FIELDS}


def record(task: Task) -> dict[str, Any]:
    """The whole record of a task, as ``GET /get/<id>`` shows it."""
    return {field.name: field.value(task) for field in TASK_FIELDS}


def object_schema(fields: tuple[Field, ...], description: str) -> dict[str, Any]:
    """The OpenAPI schema of an object made of ``fields``."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "required": [field.name for field in fields],
        "properties": {field.name: field.schema for field in fields},
    }
