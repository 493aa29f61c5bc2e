"""The dispatcher worker with a local transfer that is slow or flaky when an event asks for it.

A stand-in for a slow or unreliable Pacifica (Cartd/Ingest): there is no FUSE or traffic shaping
on the test machine, so the soak test runs its worker through this script. Two key/values of the
event (not ``proxymod.*``, so the dispatcher itself ignores them) drive it:

``fault.transfer_delay = S``      download and upload each take S/2 seconds longer
``fault.transient_failures = N``  the first N downloads raise a transient TransferError

Counting downloads across worker processes uses one file per event in ``FAULT_COUNTER_DIR``.
Everything else is the real worker: ``python slow_transfer_worker.py worker [celery options]``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pacifica.dispatcher_proxymod.cli import main
from pacifica.dispatcher_proxymod.errors import TransferError
from pacifica.dispatcher_proxymod.events import Event, FileEntry, Upload
from pacifica.dispatcher_proxymod.transfer.base import Delivery
from pacifica.dispatcher_proxymod.transfer.local import LocalTransfer

TRANSFER_DELAY_KEY = "fault.transfer_delay"
TRANSIENT_FAILURES_KEY = "fault.transient_failures"
COUNTER_DIR_VARIABLE = "FAULT_COUNTER_DIR"


def _delay(upload: Upload) -> float:
    return float(upload.key_values.get(TRANSFER_DELAY_KEY, "0") or 0) / 2


def _attempt_number(event: Event) -> int:
    """Count this download of ``event`` (1 for the first), across processes."""
    folder = Path(os.environ.get(COUNTER_DIR_VARIABLE, "."))
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in event.id)
    counter = folder / f"{safe}.attempts"
    with counter.open("a") as handle:
        handle.write("x\n")
    return len(counter.read_text().splitlines())


class SlowLocalTransfer(LocalTransfer):
    """LocalTransfer that sleeps and fails as the event's ``fault.*`` key/values say."""

    def download(
        self, event: Event, upload: Upload, files: Sequence[FileEntry], dest_dir: Path
    ) -> dict[FileEntry, Path]:
        failures = int(upload.key_values.get(TRANSIENT_FAILURES_KEY, "0") or 0)
        if failures and _attempt_number(event) <= failures:
            raise TransferError("injected: the data service is unavailable", transient=True)
        time.sleep(_delay(upload))
        return super().download(event, upload, files, dest_dir)

    def upload(self, upload: Upload, result_dir: Path, key_values: Mapping[str, str]) -> Delivery:
        time.sleep(_delay(upload))
        return super().upload(upload, result_dir, key_values)


def _install() -> None:
    """Make every transfer the worker creates a SlowLocalTransfer."""
    from pacifica.dispatcher_proxymod import queue, transfer
    from pacifica.dispatcher_proxymod.settings import Settings
    from pacifica.dispatcher_proxymod.transfer.base import Transfer

    real = transfer.make_transfer

    def make_transfer(settings: Settings, kind: str | None = None) -> Transfer:
        made = real(settings, kind)
        if isinstance(made, LocalTransfer):
            return SlowLocalTransfer(settings.data_dir, settings.output_dir)
        return made

    transfer.make_transfer = make_transfer
    queue.make_transfer = make_transfer  # type: ignore[attr-defined]


if __name__ == "__main__":
    _install()
    sys.exit(main())
