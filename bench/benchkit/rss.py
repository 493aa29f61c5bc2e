"""Memory: each process's peak RSS (VmHWM) and a tree's summed PSS, sampled while a load runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from .load import post_bodies
from .procs import Service


def _status_kib(pid: int, key: str) -> int:
    """A ``VmHWM``/``VmRSS`` line of /proc/<pid>/status, in KiB (0 if gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    """The process's proportional set size (shared pages split among their users), in KiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def _label(process: psutil.Process, root_pid: int) -> str:
    with contextlib.suppress(psutil.Error):
        cmdline = process.cmdline()
        if "worker" in cmdline:
            return "celery main" if process.pid == root_pid else "pool child"
        name = process.name()
        if "run_model.py" in " ".join(cmdline):
            return "model (" + name + ")"
        return name
    return "?"


class TreeMemory:
    """Samples a process tree's memory: each process's VmHWM and the tree's summed PSS.

    VmHWM is the kernel's own peak RSS of one process; the tree's peak is the largest sum of
    PSS (so pages a forked child shares with its parent count once) seen in one sample (every
    ``interval`` seconds).
    """

    def __init__(self, root_pid: int, interval: float = 0.02) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.peak_hwm_kib: dict[int, int] = {}
        self.labels: dict[int, str] = {}
        self.parents: dict[int, int] = {}
        self.peak_tree_pss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Read the tree once."""
        try:
            root = psutil.Process(self.root_pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for member in members:
            pid = member.pid
            if pid not in self.labels:
                self.labels[pid] = _label(member, self.root_pid)
                with contextlib.suppress(psutil.Error):
                    self.parents[pid] = member.ppid()
            hwm = _status_kib(pid, "VmHWM")
            self.peak_hwm_kib[pid] = max(self.peak_hwm_kib.get(pid, 0), hwm)
            total += _pss_kib(pid)
        self.peak_tree_pss_kib = max(self.peak_tree_pss_kib, total)

    def peak_of(self, predicate: Any = None) -> float:
        """The largest VmHWM (MiB) among the processes whose label passes ``predicate``."""
        chosen = [
            kib
            for pid, kib in self.peak_hwm_kib.items()
            if predicate is None or predicate(self.labels.get(pid, "?"))
        ]
        return max(chosen, default=0) / 1024

    def tree_mib(self) -> float:
        """The largest summed PSS of the tree (MiB)."""
        return self.peak_tree_pss_kib / 1024


def body_peak(
    start_service: Callable[[], Service], template: str, connections: int, count: int
) -> tuple[float, float, dict[str, int], list[str]]:
    """Start a fresh process, POST ``count`` bodies ``connections`` at a time, stop it: its
    RSS at start and its peak RSS (MiB), the answers' statuses and the 2xx'd task ids."""
    service = start_service()
    try:
        with TreeMemory(service.pid) as memory:
            at_start = memory.peak_of()
            statuses, ids = post_bodies(service.url, template, count, connections)
    finally:
        service.stop()
    return at_start, memory.peak_of(), statuses, ids
