"""Uploads through Ingest: post a bundle with pacifica-uploader, poll the job until it ends.

The job id is the new transaction's id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from ..errors import TransferError
from ..settings import PacificaSettings
from .session import POLL_FIRST, classify, short, without_traceback

#: Ingest's job states that end the wait.
_INGEST_DONE_TASK = "ingest metadata"
#: Longest pause between two polls of an Ingest job (a finished job ends the task sooner).
_INGEST_POLL_LONGEST = 0.5


class Ingest:
    """Posts bundles to Ingest and waits for their jobs, through our session."""

    def __init__(
        self,
        settings: PacificaSettings,
        session: requests.Session,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.session = session
        self.sleep = sleep

    def _uploader(self) -> Any:
        from pacifica.uploader import Uploader

        uploader = Uploader(
            upload_url=self.settings.upload_url,
            status_url=self.settings.upload_status_url,
            auth={},
        )
        uploader.session = self.session  # our timeouts, credentials and error hook
        return uploader

    def post(self, bundle: Path) -> int:
        """Send the bundle to Ingest (streamed from disk) and return the job id."""
        uploader = self._uploader()
        try:
            with bundle.open("rb") as stream:
                job_id = uploader.upload(stream, content_length=bundle.stat().st_size)
        except (requests.RequestException, OSError) as exc:
            raise classify(exc, "Ingest") from None
        except (KeyError, ValueError, TypeError):
            raise TransferError(
                f"Ingest at {self.settings.upload_url} accepted the bundle but gave no job id",
            ) from None
        try:
            return int(job_id)
        except (TypeError, ValueError):
            raise TransferError(f"Ingest gave a job id that is not a number: {job_id!r}") from None

    def wait(self, job_id: int) -> dict[str, Any]:
        """Poll Ingest until the job is ingested (returned) or failed (TransferError).

        Connection trouble while polling is waited out until the deadline: the bundle is already
        with Ingest, so giving up early would only invite a duplicate upload.
        """
        uploader = self._uploader()
        timeout = self.settings.ingest_timeout_seconds
        deadline = time.monotonic() + timeout
        pause = POLL_FIRST
        last: Any = None
        while True:
            try:
                last = uploader.getstate(job_id)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"unreachable: {exc}"
            except requests.HTTPError as exc:
                error = classify(exc, "Ingest")
                if not error.transient:
                    raise TransferError(f"Ingest job {job_id}: {error}", transient=False) from None
                last = str(error)
            except ValueError:
                last = "an answer that is not JSON"
            if isinstance(last, dict):
                verdict = ingest_verdict(last)
                if verdict == "done":
                    return last
                if verdict == "failed":
                    raise TransferError(
                        f"Ingest job {job_id} failed in task {last.get('task')!r}: "
                        f"{without_traceback(str(last.get('exception') or 'no reason given'))}",
                        transient=False,
                    )
            if time.monotonic() + pause > deadline:
                raise TransferError(
                    f"Ingest job {job_id} did not finish within {timeout:g} s (last state: "
                    f"{short(last)}); it may still complete, so check it before uploading again",
                    transient=False,
                )
            self.sleep(pause)
            pause = min(pause * 2, _INGEST_POLL_LONGEST)


def ingest_verdict(state: Mapping[str, Any]) -> str:
    """``"done"``, ``"failed"`` or ``"running"`` for one Ingest job state."""
    if str(state.get("state", "")).upper() == "FAILED":
        return "failed"
    try:
        percent = float(state.get("task_percent", 0))
    except (TypeError, ValueError):
        percent = 0.0
    if (
        str(state.get("state", "")).upper() == "OK"
        and state.get("task") == _INGEST_DONE_TASK
        and percent >= 100
    ):
        return "done"
    return "running"
