"""Whether bubblewrap works here: a tiny model run through the real sandbox, once per process."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from ..settings import ModelLimits, Settings
from .execute import execute, is_root

log = logging.getLogger(__name__)


#: How long the bwrap probe may take.
PROBE_TIMEOUT_SECONDS = 60.0

_PROBE_MODEL = '''\
import os


def sandbox_probe():
    """Fails unless it runs in its own PID namespace, not as root, and can write here."""
    if os.getpid() > 10:
        raise RuntimeError("not in a PID namespace: pid %d" % os.getpid())
    if os.geteuid() == 0:
        raise RuntimeError("still root")
    with open("probe.txt", "w") as handle:
        handle.write("ok")
'''

_probe_lock = threading.Lock()

_probe_results: dict[tuple[str | None, int], str | None] = {}

_warned: set[str] = set()


def bwrap_problem() -> str | None:
    """Why bwrap cannot sandbox models here, or None when it works (probed once)."""
    key = (shutil.which("bwrap"), os.geteuid())
    with _probe_lock:
        if key not in _probe_results:
            _probe_results[key] = _probe(key[0])
        return _probe_results[key]


def _probe(bwrap: str | None) -> str | None:
    """Run a tiny model through the real bwrap sandbox and check it came back fine."""
    if bwrap is None:
        return "bwrap is not installed (not found on PATH)"
    if is_root() and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is needed to drop root inside the sandbox"
    with tempfile.TemporaryDirectory(prefix="dispatcher-probe-") as folder:
        work = Path(folder)
        model = work / "sandbox_probe.py"
        model.write_text(_PROBE_MODEL)
        settings = Settings(limits=ModelLimits(timeout_seconds=PROBE_TIMEOUT_SECONDS))
        try:
            run = execute(model, [], work, work / "out.log", work / "err.log", settings, "bwrap")
        except OSError as exc:
            return f"cannot start bwrap: {exc}"
        if not run.ok:
            return f"a test run failed: {run.reason}"
        if (work / "probe.txt").read_text() != "ok":
            return "a test run could not write its work directory"
    return None


def warn_once(problem: str) -> None:
    with _probe_lock:
        if problem in _warned:
            return
        _warned.add(problem)
    log.warning(
        "SANDBOX DEGRADED: bubblewrap does not work here (%s). Models run with process "
        "isolation only (clean environment, limits, timeout): they can read what this "
        "service's user can read and reach the network. Install bubblewrap, or set "
        "DISPATCHER_SANDBOX=process to accept this.",
        problem,
    )
