"""The public functions: :func:`run_model`, :func:`sandbox_status` and :func:`sandbox_controls`."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from .. import errors
from ..settings import Settings
from .execute import execute, is_root
from .filesystem import tmp_is_sized, userns_disabled
from .probe import bwrap_problem, warn_once
from .seccomp import REFUSED_CALLS, seccomp_problem
from .verdict import ModelRun


def sandbox_status(settings: Settings) -> str:
    """The isolation models get: ``"bwrap"`` when it works here, else ``"process"``.

    Raises :class:`errors.SandboxUnavailable` when ``settings.sandbox`` is ``"bwrap"`` and
    bubblewrap does not work. The probe runs once per process (and user).
    """
    if settings.sandbox == "process":
        return "process"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if settings.sandbox == "bwrap":
        raise errors.SandboxUnavailable(
            f"DISPATCHER_SANDBOX=bwrap, but bubblewrap does not work here: {problem}"
        )
    warn_once(problem)
    return "process"


def sandbox_controls(settings: Settings) -> dict[str, str]:
    """The isolation and each control over a model's memory and privileges that is active here,
    in words (``/health`` shows it, the worker logs it at start)."""
    try:
        isolation = sandbox_status(settings)
    except errors.SandboxUnavailable as exc:
        return {"isolation": f"unavailable: {exc}"}
    limits = settings.limits
    bwrap = isolation == "bwrap"
    seccomp = seccomp_problem()
    sized = bwrap and tmp_is_sized()
    if sized:
        tmp = f"a private tmpfs of {limits.tmp_mb} MB, part of the {limits.memory_mb} MB limit"
    elif bwrap:
        tmp = "a private tmpfs, not bounded (this bubblewrap has no --size: 0.7 or later has)"
    else:
        tmp = "the host's /tmp, not bounded (process isolation)"
    namespaces = []
    if bwrap and not is_root() and userns_disabled():
        namespaces.append("disabled (bwrap --disable-userns)")
    if seccomp is None:
        namespaces.append("refused (seccomp)")
    return {
        "isolation": isolation,
        "memory": f"address space {limits.address_space_mb if sized else limits.memory_mb} MB",
        "tmp": tmp,
        "seccomp": f"active: refuses {REFUSED_CALLS}" if seccomp is None else f"off: {seccomp}",
        "user_namespaces": ", ".join(namespaces) or "allowed: no control is active",
        "cgroup_memory": "not used",
    }


def run_model(
    model_file: Path,
    ini_paths: Sequence[Path],
    work_dir: Path,
    stdout_path: Path,
    stderr_path: Path,
    settings: Settings,
    cancel: threading.Event | None = None,
) -> ModelRun:
    """Run the callable named like ``model_file`` with ``ini_paths``, sandboxed; never raises
    for anything the model does (only for a sandbox that cannot start at all).

    Setting ``cancel`` (from another thread) kills the run and everything it started within
    a fraction of a second; the run is then judged as killed."""
    work = Path(os.path.abspath(work_dir))
    model = Path(os.path.abspath(model_file))
    inis = [Path(os.path.abspath(path)) for path in ini_paths]
    for path in (model, *inis):
        if not path.is_relative_to(work):
            raise ValueError(f"{path} is not inside the work directory {work}")
    if not work.is_dir():
        raise ValueError(f"work directory {work} does not exist")
    for extra in settings.sandbox_ro_paths:
        if not os.path.isabs(extra) or not os.path.exists(extra):
            raise errors.SettingsError(
                "DISPATCHER_SANDBOX_RO_PATHS", f"{extra!r} is not an existing absolute path"
            )
    isolation = sandbox_status(settings)
    return execute(model, inis, work, stdout_path, stderr_path, settings, isolation, cancel)
