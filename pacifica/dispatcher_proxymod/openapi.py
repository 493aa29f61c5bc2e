"""The OpenAPI 3 description of the HTTP API that :mod:`.web` serves at ``/openapi.json``.

It describes what ``web`` really answers: every path, method, status code and body shape,
the error bodies included (ours, and CherryPy's for 404, 411 and 413). ``tests/test_openapi.py``
holds the service to it with schemathesis over real HTTP, so a change to either shows up there.

Binary-mode CloudEvents (attributes in ``ce-*`` headers) are accepted too; they are explained in
the text of ``POST /receive`` rather than as header parameters, because which headers are needed
depends on each other in ways OpenAPI cannot state.
"""

from __future__ import annotations

import copy
from typing import Any

from . import __version__
from .sandbox.verdict import LIMITS
from .states import Stage, TaskState, TaskStatus
from .store import shape
from .store.query import MAX_PAGE, MAX_SEARCH, MAX_SIZE

OPENAPI_VERSION = "3.0.3"

_JSON = "application/json"
_STRUCTURED = "application/cloudevents+json"
_UUID = shape.UUID_SCHEMA
_NON_BLANK = {
    "type": "string",
    "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
    "description": "a string with a character that is not white space, and no control "
    "character (the CloudEvents type system forbids them)",
}
_NULLABLE_STRING = shape.NULLABLE_STRING
_ref = shape.ref


def _json_response(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}, **extra}


def _error_response(description: str, **extra: Any) -> dict[str, Any]:
    return _json_response(description, _ref("Error"), **extra)


_LOCATION_HEADER = {
    "Location": {
        "description": "where the task's record is: /get/<taskID>",
        "schema": {"type": "string"},
    }
}
_RETRY_HEADER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_CHALLENGE_HEADER = {
    "WWW-Authenticate": {"description": "the scheme to use", "schema": {"type": "string"}}
}
_UNAUTHORIZED = _error_response(
    "Missing or wrong credentials (only when DISPATCHER_AUTH is set)", headers=_CHALLENGE_HEADER
)
_NOT_FOUND = _error_response(
    "The path, or a query parameter, names nothing this service has "
    "(CherryPy's error body for unknown paths and parameters)"
)


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


def _schemas() -> dict[str, Any]:
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


def _receive() -> dict[str, Any]:
    body_schema = _ref("CloudEvent")
    return {
        "post": {
            "operationId": "receiveEvent",
            "summary": "Record a CloudEvent as a task and queue it",
            "description": "Every CloudEvent that can be read is answered 2xx, because Pacifica "
            "Notifications disables a subscription on any other answer: a new event gets 202, "
            "a repeated (source, id) 200 with the first task. An event that no route matches "
            "is recorded with status 422 (and still answered 202). Binary mode is accepted too: "
            "the attributes in ce-specversion, ce-id, ce-source, ce-type (and other ce-*) "
            "headers, the data in the body.",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": body_schema}, _STRUCTURED: {"schema": body_schema}},
            },
            "responses": {
                "200": _json_response(
                    "A repeated delivery: the task of the first one",
                    _ref("Receipt"),
                    headers=_LOCATION_HEADER,
                ),
                "202": _json_response(
                    "Recorded as a new task (queued unless its status is 422)",
                    _ref("Receipt"),
                    headers=_LOCATION_HEADER,
                ),
                "400": _error_response("The body is not a CloudEvent; problems lists why"),
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "411": _error_response("No Content-Length and no chunked body"),
                "413": _error_response("The body is over DISPATCHER_MAX_BODY_BYTES"),
                "503": _error_response(
                    "The task store cannot record the event now; send it again later",
                    headers=_RETRY_HEADER,
                ),
            },
        }
    }


#: No credentials unless DISPATCHER_AUTH is set; then the scheme it names.
_SECURITY: list[dict[str, list[str]]] = [{}, {"basicAuth": []}, {"bearerAuth": []}]


def _task_lookup(operation_id: str, summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "parameters": [
                {
                    "name": "taskID",
                    "in": "path",
                    "required": True,
                    "schema": _UUID,
                    "description": "the taskID that POST /receive answered",
                }
            ],
            "security": _SECURITY,
            "responses": {
                "200": _json_response("The task", schema),
                "401": _UNAUTHORIZED,
                "404": _error_response("No such task"),
                "422": _error_response("The taskID is not a UUID"),
            },
        }
    }


def _control(verb: str, summary: str, description: str, answer: str) -> dict[str, Any]:
    """``POST /<verb>/{taskID}``: an operator's retry or cancel."""
    lookup = _task_lookup(f"{verb}Task", summary, {})
    operation = lookup.pop("get")
    operation["description"] = description
    operation["responses"] = {
        "202": _json_response("Accepted", _ref(answer), headers=_LOCATION_HEADER),
        "401": _UNAUTHORIZED,
        "404": _error_response("No such task"),
        "409": _error_response("The task's state does not allow it; message and state say why"),
        "411": _error_response("No Content-Length and no chunked body"),
        "422": _error_response("The taskID is not a UUID"),
    }
    return {"post": operation}


def _logs() -> dict[str, Any]:
    lookup = _task_lookup("getTaskLogs", "Each model's stdout and stderr, as kept", {})
    operation = lookup["get"]
    operation["description"] = (
        "The last DISPATCHER_LOG_TAIL_KB KiB of each model's stdout and stderr, in run order, "
        "each under a '==> <model> <stream> <==' header; with both model and stream, that "
        "text alone."
    )
    operation["parameters"] += [
        {
            "name": "model",
            "in": "query",
            "schema": {"type": "string"},
            "description": "only this model (its file name without .py)",
        },
        {
            "name": "stream",
            "in": "query",
            "schema": {"type": "string", "enum": ["stdout", "stderr"]},
        },
    ]
    operation["responses"].update(
        {
            "200": {
                "description": "The logs",
                "content": {"text/plain; charset=utf-8": {"schema": {"type": "string"}}},
            },
            "404": _error_response("No such task, or no such model in it"),
            "422": _error_response("The taskID is not a UUID, or a parameter is not known"),
        }
    )
    return lookup


def _list_parameters() -> list[dict[str, Any]]:
    """The query parameters of ``GET /``."""
    return [
        {
            "name": "state",
            "in": "query",
            "style": "form",
            "explode": True,
            "description": "only tasks in this state; repeat it for several",
            "schema": {"type": "array", "items": _ref("TaskState")},
        },
        {
            "name": "since",
            "in": "query",
            "description": "only tasks received at or after this time (ISO 8601)",
            "schema": {"type": "string", "format": "date-time"},
        },
        {
            "name": "until",
            "in": "query",
            "description": "only tasks received before this time (ISO 8601)",
            "schema": {"type": "string", "format": "date-time"},
        },
        {
            "name": "q",
            "in": "query",
            "description": "only tasks whose event id, source or input transaction id holds "
            "this text (case-insensitive)",
            "schema": {
                "type": "string",
                "maxLength": MAX_SEARCH,
                "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$",
            },
        },
        {
            "name": "page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
        },
        {
            "name": "size",
            "in": "query",
            "description": "default: DISPATCHER_PAGE_SIZE",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE},
        },
    ]


def _paths() -> dict[str, Any]:
    return {
        "/": {
            "get": {
                "operationId": "listTasks",
                "summary": "The tasks, newest first, one page at a time",
                "description": "Filters combine with AND; state may be repeated (any of "
                "them). since and until bound the time a task was received (UTC when no zone "
                "is given). An unknown parameter or a bad value is answered 422, naming it in "
                "parameter.",
                "parameters": _list_parameters(),
                "security": _SECURITY,
                "responses": {
                    "200": _json_response("One page of tasks", _ref("TaskPage")),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "422": _error_response(
                        "A parameter is unknown or its value is bad; parameter names it"
                    ),
                },
            }
        },
        "/receive": _receive(),
        "/status/{taskID}": _task_lookup(
            "getTaskStatus", "The status of one task", _ref("TaskStatus")
        ),
        "/get/{taskID}": _task_lookup(
            "getTask", "The whole record of one task", _ref("TaskRecord")
        ),
        "/logs/{taskID}": _logs(),
        "/retry/{taskID}": _control(
            "retry",
            "Run a failed, rejected or cancelled task again",
            "The task is queued again from its stored event (its inputs downloaded afresh) as "
            "its next attempt; its history keeps the earlier ones. 409 for a task that is "
            "waiting, running or succeeded.",
            "RetryAccepted",
        ),
        "/cancel/{taskID}": _control(
            "cancel",
            "Cancel a waiting or running task",
            "A waiting task is cancelled at once and never runs. A running task's models are "
            "killed by its worker within seconds and nothing of it is uploaded. It ends "
            "cancelled (status 499 Cancelled) with a reason naming who cancelled it and when, "
            "and runs again only on POST /retry. 409 for a task that already ended.",
            "CancelAccepted",
        ),
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether the database and the broker answer",
                "responses": {
                    "200": _json_response("Both answer", _ref("Health")),
                    "503": _json_response("One of them does not", _ref("Health")),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics: the fleet's tasks from the store, this process's "
                "requests",
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {
                            "text/plain; version=0.0.4; charset=utf-8": {
                                "schema": {"type": "string"}
                            }
                        },
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This description",
                "responses": {"200": _json_response("OpenAPI 3 document", {"type": "object"})},
            }
        },
    }


_DOCUMENT: dict[str, Any] = {
    "openapi": OPENAPI_VERSION,
    "info": {
        "title": "pacifica-dispatcher-proxymod",
        "version": __version__,
        "description": "Receives Pacifica CloudEvents, runs the proxymod models they name in a "
        "sandbox, and uploads the results. Every error body is JSON.",
    },
    "paths": _paths(),
    "components": {
        "schemas": _schemas(),
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic"},
            "bearerAuth": {"type": "http", "scheme": "bearer"},
        },
    },
}


def description() -> dict[str, Any]:
    """The OpenAPI document, as a fresh JSON-ready dict."""
    return copy.deepcopy(_DOCUMENT)
