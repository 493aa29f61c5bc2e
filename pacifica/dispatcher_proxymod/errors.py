"""The exceptions the dispatcher raises.

Every one subclasses ``Exception`` and carries the facts a user needs::

    DispatcherError
    ├── SettingsError          a setting is missing or malformed
    ├── InvalidEvent           the body is not a CloudEvent (HTTP 400); ``problems`` lists why
    ├── UnprocessableEvent     a CloudEvent we cannot act on (status 422); ``problems`` lists why
    │   └── ConfigError        the proxymod key/values are invalid
    ├── TransferError          moving files failed; ``transient``: a retry may help
    │   ├── ChecksumMismatch   a downloaded file does not match the event's sha1
    │   └── UploadFailed       delivering the results failed (the rest: fetching the inputs)
    ├── ModelFailed            a model raised, exited non-zero, timed out or hit a limit
    ├── InvalidParameter       a task-list filter is unknown or has a bad value (HTTP 422)
    ├── SandboxUnavailable     isolation was required but no sandbox tool works here
    ├── TaskCancelled          an operator cancelled the task while it ran
    ├── TaskNotFound           no task has this id (HTTP 404)
    └── TaskConflict           the task's state does not allow it (HTTP 409); ``state`` says which
"""

from __future__ import annotations

from collections.abc import Iterable


class DispatcherError(Exception):
    """Base of every error this package raises on purpose."""


class SettingsError(DispatcherError, ValueError):
    """A setting has a value we cannot use; the message names the setting."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"setting {name}: {problem}")
        self.name = name
        self.problem = problem


class _ProblemsError(DispatcherError, ValueError):
    """An error that reports every problem found at once."""

    summary = "invalid input"

    def __init__(self, problems: Iterable[str] | str) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(f"{self.summary}: " + "; ".join(self.problems))


class InvalidEvent(_ProblemsError):
    """The request body is not a CloudEvent at all (answered with HTTP 400)."""

    summary = "not a CloudEvent"


class UnprocessableEvent(_ProblemsError):
    """A valid CloudEvent that no route accepts or whose content we cannot run."""

    summary = "unprocessable event"


class ConfigError(UnprocessableEvent):
    """The event's proxymod key/values do not form valid configurations."""

    summary = "invalid proxymod configuration"


class TransferError(DispatcherError):
    """Moving files to or from Pacifica (or the local store) failed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ChecksumMismatch(TransferError):
    """A downloaded file's sha1 differs from the one the event announced."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"{path}: sha1 {actual} does not match the event's {expected}")
        self.path = path
        self.expected = expected
        self.actual = actual


class UploadFailed(TransferError):
    """Delivering a task's results failed (a :class:`TransferError` of the upload step)."""


class ModelFailed(DispatcherError):
    """A user's model did not complete; ``reason`` says what happened to it."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"model {model}: {reason}")
        self.model = model
        self.reason = reason


class SandboxUnavailable(DispatcherError):
    """The configuration requires a sandbox tool that is missing or does not work."""


class TaskCancelled(DispatcherError):
    """An operator cancelled the task while it ran: its models were stopped, nothing uploaded."""

    def __init__(self, reason: str = "cancelled by an operator") -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidParameter(DispatcherError, ValueError):
    """A query parameter (of ``GET /`` or the command line) is unknown or has a bad value."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class TaskNotFound(DispatcherError, LookupError):
    """No task has this id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id}")
        self.task_id = task_id


class TaskConflict(DispatcherError):
    """What an operator asked cannot be done in the task's state (``state``, a word)."""

    def __init__(self, task_id: str, state: str, message: str) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.state = state
