"""The paths: each operation, its parameters and every status code it answers."""

from __future__ import annotations

from typing import Any

from ..store import shape
from ..store.query import MAX_PAGE, MAX_SEARCH, MAX_SIZE
from .responses import (
    JSON,
    LOCATION_HEADER,
    NOT_FOUND,
    RETRY_HEADER,
    SECURITY,
    UNAUTHORIZED,
    error_response,
    json_response,
)

_STRUCTURED = "application/cloudevents+json"
_UUID = shape.UUID_SCHEMA
_ref = shape.ref


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
            "security": SECURITY,
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": body_schema}, _STRUCTURED: {"schema": body_schema}},
            },
            "responses": {
                "200": json_response(
                    "A repeated delivery: the task of the first one",
                    _ref("Receipt"),
                    headers=LOCATION_HEADER,
                ),
                "202": json_response(
                    "Recorded as a new task (queued unless its status is 422)",
                    _ref("Receipt"),
                    headers=LOCATION_HEADER,
                ),
                "400": error_response("The body is not a CloudEvent; problems lists why"),
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
                "411": error_response("No Content-Length and no chunked body"),
                "413": error_response("The body is over DISPATCHER_MAX_BODY_BYTES"),
                "503": error_response(
                    "The task store cannot record the event now; send it again later",
                    headers=RETRY_HEADER,
                ),
            },
        }
    }


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
            "security": SECURITY,
            "responses": {
                "200": json_response("The task", schema),
                "401": UNAUTHORIZED,
                "404": error_response("No such task"),
                "422": error_response("The taskID is not a UUID"),
            },
        }
    }


def _control(verb: str, summary: str, description: str, answer: str) -> dict[str, Any]:
    """``POST /<verb>/{taskID}``: an operator's retry or cancel."""
    lookup = _task_lookup(f"{verb}Task", summary, {})
    operation = lookup.pop("get")
    operation["description"] = description
    operation["responses"] = {
        "202": json_response("Accepted", _ref(answer), headers=LOCATION_HEADER),
        "401": UNAUTHORIZED,
        "404": error_response("No such task"),
        "409": error_response("The task's state does not allow it; message and state say why"),
        "411": error_response("No Content-Length and no chunked body"),
        "422": error_response("The taskID is not a UUID"),
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
            "404": error_response("No such task, or no such model in it"),
            "422": error_response("The taskID is not a UUID, or a parameter is not known"),
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


def describe_paths() -> dict[str, Any]:
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
                "security": SECURITY,
                "responses": {
                    "200": json_response("One page of tasks", _ref("TaskPage")),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "422": error_response(
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
                    "200": json_response("Both answer", _ref("Health")),
                    "503": json_response("One of them does not", _ref("Health")),
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
                "responses": {"200": json_response("OpenAPI 3 document", {"type": "object"})},
            }
        },
    }
