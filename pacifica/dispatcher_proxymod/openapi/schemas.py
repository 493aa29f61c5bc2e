"""The components' schemas: the CloudEvents we accept, the task JSON, every answer's body."""

from __future__ import annotations

from typing import Any

from ..sandbox.verdict import LIMITS
from ..states import Stage, TaskState, TaskStatus
from ..store import shape

_UUID = shape.UUID_SCHEMA
_NON_BLANK = {
    "type": "string",
    "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
    "description": "a string with a character that is not white space, and no control "
    "character (the CloudEvents type system forbids them)",
}
_NULLABLE_STRING = shape.NULLABLE_STRING
_ref = shape.ref


def _structured_event(version: str, own: dict[str, Any]) -> dict[str, Any]:
    """CloudEvents ``version`` (1.0 or 0.3) in structured mode: the attributes in the body."""
    return {
        "type": "object",
        "description": f"CloudEvents {version} in structured mode. Extension attributes are "
        "named with lower-case letters and digits only.",
        "required": ["specversion", "id", "source", "type"],
        "additionalProperties": False,
        "patternProperties": {"^[a-z0-9]+$": {}},
        "properties": {
            "specversion": {"type": "string", "enum": [version]},
            "id": _NON_BLANK,
            "source": _NON_BLANK,
            "type": _NON_BLANK,
            "time": {
                "type": "string",
                "format": "date-time",
                "maxLength": 64,
                "description": "RFC 3339 with a time zone",
            },
            "datacontenttype": {"type": "string", "minLength": 1},
            "subject": {"type": "string", "minLength": 1},
            "data": {"nullable": True},
            **own,
        },
    }


def describe_schemas() -> dict[str, Any]:
    statuses = [status.value for status in TaskStatus]
    return {
        "TaskStatus": {
            "type": "string",
            "enum": statuses,
            "description": "202 waiting for a worker, 102 running, then one of 200 (results "
            "delivered), 422 (an event it will not or cannot run), 500 (it ran and failed), "
            "499 (an operator cancelled it).",
        },
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "a short name of the error"},
                "message": {"type": "string", "description": "what went wrong, for people"},
                "problems": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "every problem found (400 InvalidEvent)",
                },
                "status": {
                    "type": "integer",
                    "description": "the HTTP status (errors CherryPy raises itself)",
                },
                "parameter": {
                    "type": "string",
                    "description": "the query parameter that is unknown or bad (422)",
                },
                "state": {
                    "type": "string",
                    "enum": [state.value for state in TaskState],
                    "description": "the task's state that does not allow the request (409)",
                },
            },
        },
        "Receipt": {
            "type": "object",
            "required": ["taskID", "status", "duplicate"],
            "additionalProperties": False,
            "properties": {
                "taskID": _UUID,
                "status": _ref("TaskStatus"),
                "duplicate": {
                    "type": "boolean",
                    "description": "true when this (source, id) was received before",
                },
            },
        },
        "TaskState": {
            "type": "string",
            "enum": [state.value for state in TaskState],
            "description": "the state in words: waiting (202), running (102), succeeded (200), "
            "rejected (422: not a valid proxymod request), failed (500: a model, a transfer or "
            "the service failed), cancelled (499: an operator cancelled it)",
        },
        "Stage": {
            "type": "string",
            "enum": [stage.value for stage in Stage],
            "description": "where a task that did not succeed ended",
        },
        "Attempt": shape.ATTEMPT_SCHEMA,
        "RetryAccepted": {
            "type": "object",
            "additionalProperties": False,
            "required": ["taskID", "attempt"],
            "properties": {
                "taskID": _UUID,
                "attempt": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "the number of the attempt that will run",
                },
            },
        },
        "CancelAccepted": {
            "type": "object",
            "additionalProperties": False,
            "required": ["taskID", "state", "reason"],
            "properties": {
                "taskID": _UUID,
                "state": {
                    "type": "string",
                    "enum": ["cancelled", "running"],
                    "description": "cancelled: it was waiting and never runs; running: its "
                    "worker stops it within seconds",
                },
                "reason": {"type": "string", "description": "who cancelled it, and when"},
            },
        },
        "TaskSummary": shape.object_schema(shape.SUMMARY_FIELDS, "one task in the task list"),
        "TaskPage": {
            "type": "object",
            "required": ["tasks", "page", "size", "total", "next"],
            "additionalProperties": False,
            "properties": {
                "tasks": {"type": "array", "items": _ref("TaskSummary")},
                "page": {"type": "integer", "minimum": 1},
                "size": {"type": "integer", "minimum": 1, "maximum": 1000},
                "total": {"type": "integer", "minimum": 0},
                "next": {
                    "type": "string",
                    "nullable": True,
                    "description": "the path of the next page, null on the last one",
                },
            },
        },
        "ModelRun": {
            "type": "object",
            "description": "one model's run in the sandbox",
            "required": ["model", "started", "ended", "outcome", "isolation"],
            "properties": {
                "model": {"type": "string"},
                "started": {"type": "string", "format": "date-time"},
                "ended": {"type": "string", "format": "date-time"},
                "duration_seconds": {"type": "number"},
                "exit_code": {"type": "integer", "nullable": True},
                "signal": {"type": "integer", "nullable": True},
                "signal_name": _NULLABLE_STRING,
                "outcome": {
                    "type": "string",
                    "enum": ["ok", "error", "timeout", "limit", "killed"],
                },
                "limit": {
                    "type": "string",
                    "nullable": True,
                    "enum": [*LIMITS, None],
                },
                "reason": _NULLABLE_STRING,
                "isolation": {"type": "string", "enum": ["bwrap", "process"]},
                "traceback": {
                    "type": "string",
                    "nullable": True,
                    "description": "the model's traceback, without the dispatcher's frames",
                },
            },
        },
        "TaskRecord": shape.object_schema(shape.TASK_FIELDS, "the whole record of a task"),
        "Health": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "database", "broker"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "database": {"type": "string", "description": "ok, or unavailable: <why>"},
                "broker": {"type": "string", "description": "ok, or unavailable: <why>"},
                "sandbox": {
                    "type": "object",
                    "description": "The isolation models get here and each control over their "
                    "memory and privileges, in words (isolation, memory, tmp, seccomp, "
                    "user_namespaces, cgroup_memory)",
                    "additionalProperties": {"type": "string"},
                },
            },
        },
        "LegacyEvent": {
            "type": "object",
            "description": "CloudEvents 0.1, as Pacifica Notifications delivers events. Other "
            "top-level members are kept as extensions.",
            "required": ["cloudEventsVersion", "eventID", "source", "eventType"],
            "properties": {
                "cloudEventsVersion": {"type": "string", "enum": ["0.1"]},
                "eventID": _NON_BLANK,
                "source": _NON_BLANK,
                "eventType": _NON_BLANK,
                "eventTime": {
                    "type": "string",
                    "nullable": True,
                    "maxLength": 64,
                    "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$",
                },
                "contentType": _NULLABLE_STRING,
                "schemaURL": _NULLABLE_STRING,
                "eventTypeVersion": _NULLABLE_STRING,
                "extensions": {"type": "object", "nullable": True},
                "data": {"nullable": True},
                "specversion": {
                    "not": {},
                    "description": "absent: a body with specversion is a 0.3/1.0 event",
                },
            },
        },
        "Event10": _structured_event(
            "1.0",
            {"dataschema": {"type": "string", "minLength": 1}},
        ),
        "Event03": _structured_event(
            "0.3",
            {
                "schemaurl": {"type": "string", "minLength": 1},
                "datacontentencoding": {
                    "type": "string",
                    "minLength": 1,
                    "description": "base64: data is a base64 string of JSON or UTF-8 text",
                },
            },
        ),
        "CloudEvent": {"oneOf": [_ref("LegacyEvent"), _ref("Event10"), _ref("Event03")]},
    }
