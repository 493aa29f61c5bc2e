"""The transfer that talks to a real Pacifica: Cartd for downloads, Ingest for uploads.

Downloads ask Cartd for a cart holding exactly the requested files and stream its tar to disk,
verifying each file (:mod:`.cartd`). Uploads bundle the result tree into a temporary tar on disk
(:mod:`.bundle`), post it to Ingest and poll the job until Ingest reports it ingested or failed
(:mod:`.ingest`). All HTTP goes through one session (:mod:`.session`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import PacificaSettings
from .base import Delivery, Transfer, list_result_files
from .bundle import bundle_metadata, write_bundle
from .cartd import Cartd
from .ingest import Ingest
from .session import Retry, make_session

if TYPE_CHECKING:
    from ..events import Event, FileEntry, Upload


class PacificaTransfer(Transfer):
    """Download through Cartd, upload through Ingest."""

    kind = "pacifica"

    def __init__(
        self,
        settings: PacificaSettings,
        bundle_dir: Path | None = None,
        attempts: int = 3,
        backoff_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.bundle_dir = bundle_dir
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.session = make_session(settings)
        retry = Retry(self.attempts, backoff_seconds, sleep)
        self.cartd = Cartd(settings, self.session, retry, sleep)
        self.ingest = Ingest(settings, self.session, sleep)

    def download(
        self, event: Event, upload: Upload, files: Sequence[FileEntry], dest_dir: Path
    ) -> dict[FileEntry, Path]:
        """Fetch exactly ``files`` through Cartd, verifying each, retrying transient failures.

        All files go in one cart; if that cart fails, each file gets a cart of its own.
        """
        return self.cartd.download(upload, files, dest_dir)

    def upload(self, upload: Upload, result_dir: Path, key_values: Mapping[str, str]) -> Delivery:
        """Bundle ``result_dir`` on disk, post it to Ingest and wait until it is ingested."""
        metadata = bundle_metadata(upload, key_values)
        results = list_result_files(result_dir)
        bundle_dir = self.bundle_dir if self.bundle_dir is not None else Path(result_dir).parent
        bundle_dir.mkdir(parents=True, exist_ok=True)
        fd, bundle_name = tempfile.mkstemp(prefix="bundle-", suffix=".tar", dir=bundle_dir)
        bundle = Path(bundle_name)
        try:
            with os.fdopen(fd, "wb") as out:
                write_bundle(metadata, results, out)
            job_id = self.ingest.post(bundle)
        finally:
            with contextlib.suppress(FileNotFoundError):
                bundle.unlink()
        self.ingest.wait(job_id)
        location = f"{self.settings.upload_status_url}?job_id={job_id}"
        return Delivery(location=location, transaction_id=int(job_id), job_id=str(job_id))
