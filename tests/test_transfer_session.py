"""Tests of transfer.session: what a Pacifica service's error text is worth quoting."""

from __future__ import annotations

import pytest

from pacifica.dispatcher_proxymod.transfer.session import without_traceback


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("Failed: no (Traceback (most recent call last):\n  File x\nE: y\n)", "Failed: no"),
        ("Traceback (most recent call last):\n  File x\nValueError: bad\n", "ValueError: bad"),
        ("plain   message\n", "plain message"),
    ],
)  # fmt: skip
def test_without_traceback(text: str, short: str) -> None:
    assert without_traceback(text) == short
