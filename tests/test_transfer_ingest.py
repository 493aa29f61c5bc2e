"""Tests of transfer.ingest: reading an Ingest job's state."""

from __future__ import annotations

from typing import Any

import pytest

from pacifica.dispatcher_proxymod.transfer.ingest import ingest_verdict


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        ({"state": "OK", "task": "ingest metadata", "task_percent": "100.00000"}, "done"),
        ({"state": "OK", "task": "ingest metadata", "task_percent": 100}, "done"),
        ({"state": "OK", "task": "ingest files", "task_percent": "100"}, "running"),
        ({"state": "OK", "task": "UPLOADING", "task_percent": "0"}, "running"),
        ({"state": "FAILED", "task": "Policy Validation", "exception": "no"}, "failed"),
        ({}, "running"),
    ],
)
def test_ingest_verdict(state: dict[str, Any], verdict: str) -> None:
    assert ingest_verdict(state) == verdict
