"""What happened to one model run: the :class:`ModelRun` and the verdict drawn from an exit
status and the runner's report."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from ..runtime import run_model as runner
from ..settings import ModelLimits

#: How much of the end of the model's stderr is read to explain a failure.
STDERR_TAIL_BYTES = 8192


@dataclass(frozen=True)
class ModelRun:
    """What happened to one model run."""

    model: str
    started: datetime
    ended: datetime
    exit_code: int | None
    signal: int | None
    outcome: str  # "ok" | "error" | "timeout" | "limit" | "killed"
    limit: str | None  # "memory" | "cpu" | "file_size" | "processes" | "open_files" | None
    reason: str | None  # names the model and what happened; None when ok
    isolation: str  # "bwrap" | "process"

    @property
    def ok(self) -> bool:
        """True when the model's callable returned (or it exited with status 0)."""
        return self.outcome == "ok"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (timestamps in ISO 8601)."""
        return {
            "model": self.model,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
            "duration_seconds": round((self.ended - self.started).total_seconds(), 3),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "signal_name": _signal_name(self.signal) if self.signal is not None else None,
            "outcome": self.outcome,
            "limit": self.limit,
            "reason": self.reason,
            "isolation": self.isolation,
        }


@dataclass(frozen=True)
class Exit:
    """How the supervised process ended."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    cpu_seconds: float


def stderr_tail(handle: IO[bytes], start: int) -> str:
    """The end of what this run wrote to stderr, read through the run's own descriptor."""
    try:
        size = os.fstat(handle.fileno()).st_size
        offset = max(start, size - STDERR_TAIL_BYTES)
        return os.pread(handle.fileno(), size - offset, offset).decode("utf-8", "replace")
    except OSError:
        return ""


def runner_report(tail: str) -> dict[str, str] | None:
    """The runner's marker line: the last one in the stderr tail (processes the model started
    may still have written after the runner reported and exited)."""
    markers = [line for line in tail.splitlines() if line.startswith(runner.MARKER)]
    if not markers:
        return None
    try:
        report = json.loads(markers[-1][len(runner.MARKER) :])
    except ValueError:
        return None
    if not isinstance(report, dict):
        return None
    return {str(key): str(value) for key, value in report.items()}


def _last_line(tail: str) -> str | None:
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _limit_text(limit: str, limits: ModelLimits) -> str:
    return {
        "memory": f"exceeded the memory limit of {limits.memory_mb} MB",
        "cpu": f"exceeded the CPU time limit of {limits.cpu_seconds} s",
        "file_size": f"exceeded the file size limit of {limits.file_size_mb} MB",
        "open_files": f"exceeded the limit of {limits.open_files} open files",
        "processes": f"exceeded the limit of {limits.processes} processes",
    }[limit]


def judge(
    name: str,
    result: Exit,
    tail: str,
    limits: ModelLimits,
    isolation: str,
    started: datetime,
    ended: datetime,
) -> ModelRun:
    """Turn an exit status and the stderr tail into a :class:`ModelRun`."""
    outcome, limit, reason = _verdict(name, result, tail, limits)
    return ModelRun(
        model=name,
        started=started,
        ended=ended,
        exit_code=result.exit_code,
        signal=result.signal,
        outcome=outcome,
        limit=limit,
        reason=reason,
        isolation=isolation,
    )


def _verdict(
    name: str, result: Exit, tail: str, limits: ModelLimits
) -> tuple[str, str | None, str | None]:
    """``(outcome, limit, reason)``."""
    prefix = f"model {name}:"
    if result.timed_out:
        return "timeout", None, f"{prefix} timed out after {limits.timeout_seconds:g} s (killed)"
    if result.signal is not None:
        return _signal_verdict(prefix, result, limits)
    if result.exit_code == runner.EXIT_OK:
        return "ok", None, None
    report = runner_report(tail) if result.exit_code in runner.RESERVED_EXIT_CODES else None
    if report is not None:
        what, detail = report.get("what", ""), report.get("detail", "")
        if what.startswith("limit:"):
            limit = what.removeprefix("limit:")
            if limit in ("memory", "file_size", "open_files", "processes"):
                return "limit", limit, f"{prefix} {_limit_text(limit, limits)} ({detail})"
        if what == "raised":
            return "error", None, f"{prefix} raised {detail}"
        if what == "import":
            return "error", None, f"{prefix} failed to import: {detail}"
        if what == "no_callable":
            return "error", None, f"{prefix} {detail}"
        if what == "usage":
            return "error", None, f"{prefix} the sandbox runner could not start it: {detail}"
    reason = f"{prefix} exited with status {result.exit_code}"
    last = _last_line(tail)
    return "error", None, f"{reason} (stderr: {last})" if last else reason


def _signal_verdict(
    prefix: str, result: Exit, limits: ModelLimits
) -> tuple[str, str | None, str | None]:
    number = result.signal
    assert number is not None
    name = _signal_name(number)
    if number == signal.SIGXCPU or (
        number == signal.SIGKILL and result.cpu_seconds >= limits.cpu_seconds
    ):
        return "limit", "cpu", f"{prefix} {_limit_text('cpu', limits)} (killed by {name})"
    if number == signal.SIGXFSZ:
        return "limit", "file_size", f"{prefix} {_limit_text('file_size', limits)} ({name})"
    if number == signal.SIGKILL:
        return "killed", None, f"{prefix} was killed by {name} (possibly out of memory)"
    return "killed", None, f"{prefix} was killed by {name}"
