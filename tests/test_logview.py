"""The text of a task's kept logs, as ``/logs/<id>`` and ``logs ID`` show it."""

from __future__ import annotations

import pytest

from pacifica.dispatcher_proxymod.logview import LogNotFound, render
from pacifica.dispatcher_proxymod.modellog import ModelLog

LOGS = [
    ModelLog("a", "stdout", "a out\n"),
    ModelLog("a", "stderr", "a err"),
    ModelLog("b", "stdout", "b out\n", truncated=True),
    ModelLog("b", "stderr", ""),
]


def test_all_logs_under_headers() -> None:
    assert render(LOGS, "t", None, None, 64) == (
        "==> a stdout <==\na out\n==> a stderr <==\na err\n"
        "==> b stdout <==\n[... only the last 64 KiB of this stream are kept ...]\nb out\n"
        "==> b stderr <==\n"
    )


def test_one_model_one_stream_is_the_text_alone() -> None:
    assert render(LOGS, "t", "a", "stderr", 64) == "a err"
    assert render(LOGS, "t", None, "stderr", 64) == "==> a stderr <==\na err\n==> b stderr <==\n"


def test_an_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(LogNotFound, match=r"no logs of model 'c' \(models: a, b\)"):
        render(LOGS, "t", "c", None, 64)
