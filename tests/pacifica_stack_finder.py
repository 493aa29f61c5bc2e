"""Find the real Pacifica services for a test: probed, started when needed, or a clear skip.

A ``stack.json`` alone proves nothing (a stack may be half started, stopped or stale), so the
harness's own ``status`` probes every process it describes first. When something does not
answer, the harness's idempotent ``up`` starts (or restarts) its own stack, under the machine's
stack lock, in CI integration runs (``CI=true`` with ``DISPATCHER_INTEGRATION=1``) or when
``DISPATCHER_PACIFICA_STACK_START=1``; elsewhere the test is skipped with what is down and how to
start it. The answer is worked out once per test process.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HARNESS = Path(__file__).resolve().parent / "integration" / "stack" / "pacifica_stack.py"
STACK_ROOT = Path(
    os.environ.get("DISPATCHER_PACIFICA_STACK_ROOT", "/tmp/dispatcher-pacifica-stack")
)
#: The machine has one stack; every start or stop of it takes this lock.
STACK_LOCK = "/tmp/pacifica-stack.lock"
START_COMMAND = f"python3 {HARNESS.relative_to(HARNESS.parents[3])} up"
PROBE_TIMEOUT = 120.0
UP_TIMEOUT = 1800.0  # a first up installs the services' virtualenv


def strict_integration() -> bool:
    """True in CI integration runs, where a stack that will not answer fails the tests."""
    return (
        os.environ.get("CI", "").lower() == "true"
        and os.environ.get("DISPATCHER_INTEGRATION") == "1"
    )


def may_start() -> bool:
    """True when a test may start the stack itself."""
    return strict_integration() or os.environ.get("DISPATCHER_PACIFICA_STACK_START") == "1"


def _harness(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(HARNESS), "--root", str(STACK_ROOT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def probe() -> str:
    """'' when every process of the stack answers, else what is down (from ``status``)."""
    try:
        answer = _harness("status", "--json", timeout=PROBE_TIMEOUT)
        report = json.loads(answer.stdout)
    except (subprocess.TimeoutExpired, ValueError) as exc:
        return f"the stack's status did not answer ({exc})"
    down = sorted(name for name, row in report.items() if not row.get("ok"))
    if down:
        return "not answering: " + ", ".join(down)
    try:
        json.loads((STACK_ROOT / "stack.json").read_text())
    except (OSError, ValueError) as exc:
        return f"every service answers but {STACK_ROOT / 'stack.json'} is unusable ({exc})"
    return ""


def start() -> str:
    """Run the harness's ``up`` under the stack lock; '' on success, else why not."""
    command = ["flock", STACK_LOCK, sys.executable, str(HARNESS), "--root", str(STACK_ROOT), "up"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=UP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"{START_COMMAND} took more than {UP_TIMEOUT:g} s"
    if done.returncode != 0:
        return f"{START_COMMAND} exited {done.returncode}: {done.stderr.strip()[-1500:]}"
    return ""


@functools.cache
def _outcome() -> tuple[dict[str, Any], str]:
    problem = probe()
    if problem and may_start():
        failure = start()
        problem = f"{problem}; starting it failed: {failure}" if failure else probe()
    if problem:
        where = f"no usable Pacifica stack at {STACK_ROOT} ({problem})"
        return {}, f"{where}; start it with {START_COMMAND}"
    info: dict[str, Any] = json.loads((STACK_ROOT / "stack.json").read_text())
    return info, ""


def find_stack() -> dict[str, Any]:
    """The answering stack's endpoints (its ``stack.json``); skip, or fail in CI, naming why."""
    info, problem = _outcome()
    if problem:
        if strict_integration():
            pytest.fail(problem + "; CI=true and DISPATCHER_INTEGRATION=1 require it")
        pytest.skip(problem)
    return info
