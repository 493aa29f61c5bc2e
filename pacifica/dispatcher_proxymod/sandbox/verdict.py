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
from .seccomp import REFUSED_CALLS, REFUSED_SIGNAL

#: How much of the end of the model's stderr is read to explain a failure.
STDERR_TAIL_BYTES = 8192
#: The limits a run can end with (``ModelRun.limit``); the OpenAPI description lists these.
LIMITS = ("memory", "cpu", "file_size", "processes", "open_files", "tmp_space", "system_call")
#: The limits the runner reports itself (the others show in the exit status).
RUNNER_LIMITS = ("memory", "file_size", "open_files", "processes", "tmp_space")


@dataclass(frozen=True)
class ModelRun:
    """What happened to one model run."""

    model: str
    started: datetime
    ended: datetime
    exit_code: int | None
    signal: int | None
    outcome: str  # "ok" | "error" | "timeout" | "limit" | "killed"
    limit: str | None  # one of LIMITS, or None
    reason: str | None  # names the model and what happened; None when ok
    isolation: str  # "bwrap" | "process"
    #: the model's traceback without the runner's frames, when it raised
    traceback: str | None = None

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
            "traceback": self.traceback,
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


def runner_report(text: str) -> dict[str, str] | None:
    """The runner's report: the last marker line of what it wrote on its report pipe (a bounded
    read that only the runner writes; never the model's stderr). Anything that is not one flat
    JSON object, deeply nested JSON included, is no report."""
    markers = [line for line in text.splitlines() if line.startswith(runner.MARKER)]
    if not markers:
        return None
    try:
        report = json.loads(markers[-1][len(runner.MARKER) :])
    except (ValueError, RecursionError):
        return None
    if not isinstance(report, dict):
        return None
    return {str(key): str(value) for key, value in report.items() if not isinstance(value, dict)}


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
        "tmp_space": f"filled its /tmp, which holds at most {limits.tmp_mb} MB of its "
        f"{limits.memory_mb} MB memory limit",
        "system_call": f"made a system call the sandbox refuses ({REFUSED_CALLS})",
    }[limit]


def judge(
    name: str,
    result: Exit,
    report: bytes,
    tail: str,
    limits: ModelLimits,
    isolation: str,
    started: datetime,
    ended: datetime,
) -> ModelRun:
    """Turn an exit status, the runner's report and the stderr tail into a :class:`ModelRun`."""
    text = report.decode("utf-8", "replace")
    outcome, limit, reason = _verdict(name, result, text, tail, limits)
    facts = runner_report(text) if outcome != "ok" else None
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
        traceback=(facts or {}).get("traceback"),
    )


def _at(report: dict[str, str]) -> str:
    """`` at models/x.py, line 12, in f: `code` `` from the runner's report, or ""."""
    where = " ".join(report.get("where", "").split())[:300]
    source = " ".join(report.get("source", "").split())[:200]
    if not where:
        return ""
    return f" at {where}" + (f": `{source}`" if source and "`" not in source else "")


def _verdict(
    name: str, result: Exit, report_text: str, tail: str, limits: ModelLimits
) -> tuple[str, str | None, str | None]:
    """``(outcome, limit, reason)``."""
    prefix = f"model {name}:"
    if result.timed_out:
        return "timeout", None, f"{prefix} timed out after {limits.timeout_seconds:g} s (killed)"
    if result.signal is not None:
        return _signal_verdict(prefix, result, limits)
    if result.exit_code == runner.EXIT_OK:
        return "ok", None, None
    reserved = result.exit_code in runner.RESERVED_EXIT_CODES
    report = runner_report(report_text) if reserved else None
    if report is not None:
        what, detail = report.get("what", ""), report.get("detail", "")
        if what.startswith("limit:"):
            limit = what.removeprefix("limit:")
            if limit in RUNNER_LIMITS:
                return "limit", limit, f"{prefix} {_limit_text(limit, limits)} ({detail})"
        at = _at(report)
        if what == "raised":
            return "error", None, f"{prefix} raised {detail}{at}"
        if what == "import":
            return "error", None, f"{prefix} failed to import: {detail}{at}"
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
    if number == REFUSED_SIGNAL:
        return "limit", "system_call", f"{prefix} {_limit_text('system_call', limits)} ({name})"
    if number == signal.SIGXFSZ:
        return "limit", "file_size", f"{prefix} {_limit_text('file_size', limits)} ({name})"
    if number == signal.SIGKILL:
        return "killed", None, f"{prefix} was killed by {name} (possibly out of memory)"
    return "killed", None, f"{prefix} was killed by {name}"
