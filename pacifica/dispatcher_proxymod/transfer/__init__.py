"""Moving a task's files: one :class:`Transfer` interface, a local and a Pacifica implementation.

:func:`make_transfer` picks the implementation the settings ask for. The Pacifica one
(``transfer.pacifica``, with ``requests``) is imported only when it is asked for: the web
process, which imports this package through the Celery app, never moves a file.
"""

from __future__ import annotations

from ..errors import SettingsError
from ..settings import TRANSFER_KINDS, Settings
from .base import Delivery, ResultFile, Transfer
from .local import LocalTransfer

__all__ = [
    "Delivery",
    "LocalTransfer",
    "ResultFile",
    "Transfer",
    "make_transfer",
]


def make_transfer(settings: Settings, kind: str | None = None) -> Transfer:
    """The transfer named by ``kind`` (default: ``settings.transfer``), set up from ``settings``."""
    chosen = (kind or settings.transfer).strip().lower()
    if chosen == "local":
        return LocalTransfer(settings.data_dir, settings.output_dir)
    if chosen == "pacifica":
        from .pacifica import PacificaTransfer

        return PacificaTransfer(
            settings.pacifica,
            bundle_dir=settings.work_dir,
            attempts=min(settings.transfer_retries, 2) + 1,
            backoff_seconds=settings.retry_backoff_seconds,
        )
    raise SettingsError(
        "DISPATCHER_TRANSFER", f"{chosen!r} is not one of {', '.join(TRANSFER_KINDS)}"
    )
