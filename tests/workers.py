"""The command line of a real Celery worker, as the tests and the fault suite start it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

#: How the service's worker is run: ``python -m pacifica.dispatcher_proxymod worker``.
SERVICE_ENTRY = ("-m", "pacifica.dispatcher_proxymod")


def worker_command(
    node: str, concurrency: int = 1, entry: Sequence[str] = SERVICE_ENTRY
) -> list[str]:
    """``worker`` with ``concurrency`` processes, no gossip, mingle or heartbeat.

    The node name starts with ``node`` and is unique on this machine (pid and a clock), so
    workers of runs side by side never take each other for duplicates.
    """
    return [
        sys.executable,
        *entry,
        "worker",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"{node}-{os.getpid()}-{time.monotonic_ns()}@%h",
    ]
