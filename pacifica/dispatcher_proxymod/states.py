"""What a task is doing, said two ways: the original status strings and a state in words.

The status strings (``202 Accepted`` ...) are the seed's API and stay as they are for
``/status/<id>`` and the ``status`` field. People read the :class:`TaskState` instead, and, for a
task that did not succeed, the :class:`Stage` it ended in and a one-line reason. Every other shape
(API answers, OpenAPI, the UI, the command line, metrics) is derived from these enums.
"""

from __future__ import annotations

import enum


class TaskStatus(enum.StrEnum):
    """The status strings of a task, as the original service reported them."""

    ACCEPTED = "202 Accepted"  #: recorded, waiting for a worker
    PROCESSING = "102 Processing"  #: a worker has claimed it
    OK = "200 OK"  #: models ran and results were delivered
    UNPROCESSABLE = "422 Unprocessable Entity"  #: a valid event we will not or cannot run
    FAILED = "500 Internal Server Error"  #: it ran and failed; the error fields say why
    #: stopped on an operator's request (499 is the conventional "client closed request")
    CANCELLED = "499 Cancelled"

    @property
    def final(self) -> bool:
        """True once nothing more will happen to the task (unless an operator retries it)."""
        return self in _FINAL

    @property
    def state(self) -> TaskState:
        """The state in words."""
        return _STATE_OF_STATUS[self]


class TaskState(enum.StrEnum):
    """A task's state in words, as people (and the filters of ``GET /``) name it."""

    WAITING = "waiting"  #: recorded and queued, no worker has it yet
    RUNNING = "running"  #: a worker is running it
    SUCCEEDED = "succeeded"  #: every model ran; the results were delivered
    REJECTED = "rejected"  #: not a valid proxymod request; nothing ran
    FAILED = "failed"  #: a model, a transfer or the service failed
    CANCELLED = "cancelled"  #: an operator cancelled it

    @property
    def status(self) -> TaskStatus:
        """The original status string of this state."""
        return _STATUS_OF_STATE[self]

    @property
    def final(self) -> bool:
        """True for the states a task ends in."""
        return self.status.final

    @property
    def retryable(self) -> bool:
        """True for the states ``/retry`` accepts."""
        return self in {TaskState.FAILED, TaskState.REJECTED, TaskState.CANCELLED}


class Stage(enum.StrEnum):
    """Where a task that did not succeed ended."""

    VALIDATE = "validate"  #: reading the event and its proxymod key/values
    DOWNLOAD = "download"  #: fetching the inputs and models
    MODEL = "model"  #: running a user's model
    UPLOAD = "upload"  #: delivering the results
    INTERNAL = "internal"  #: the service itself (a bug, a lost worker, the database)


_FINAL = {TaskStatus.OK, TaskStatus.UNPROCESSABLE, TaskStatus.FAILED, TaskStatus.CANCELLED}

_STATE_OF_STATUS = {
    TaskStatus.ACCEPTED: TaskState.WAITING,
    TaskStatus.PROCESSING: TaskState.RUNNING,
    TaskStatus.OK: TaskState.SUCCEEDED,
    TaskStatus.UNPROCESSABLE: TaskState.REJECTED,
    TaskStatus.FAILED: TaskState.FAILED,
    TaskStatus.CANCELLED: TaskState.CANCELLED,
}
_STATUS_OF_STATE = {state: status for status, state in _STATE_OF_STATUS.items()}


def state_of(status: str) -> TaskState:
    """The state of a stored status string (raises ``ValueError`` for an unknown one)."""
    return TaskStatus(status).state
