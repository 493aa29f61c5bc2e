"""Each model's own logs: copied into the combined logs, tailed, never read through a link."""

from __future__ import annotations

import os
from pathlib import Path

from pacifica.dispatcher_proxymod.modellog import collect, model_log_path


def _write(result: Path, model: str, stream: str, data: bytes) -> None:
    path = model_log_path(result, model, stream)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_logs_are_appended_to_the_combined_log_and_tailed(tmp_path: Path) -> None:
    _write(tmp_path, "one", "stdout", b"first model\n")
    _write(tmp_path, "two", "stdout", b"x" * 5000 + b"\x00end\n")
    first = collect(tmp_path, "one", "stdout", 1024)
    second = collect(tmp_path, "two", "stdout", 1024)
    assert first.text == "first model\n" and not first.truncated
    assert second.truncated and len(second.text) == 1024 and second.text.endswith("\ufffdend\n")
    combined = (tmp_path / "stdout.log").read_bytes()
    assert combined == b"first model\n" + b"x" * 5000 + b"\x00end\n"


def test_a_link_planted_by_a_model_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("do not serve me")
    result = tmp_path / "result"
    (result / "logs").mkdir(parents=True)
    os.symlink(secret, model_log_path(result, "evil", "stdout"))
    os.link(secret, model_log_path(result, "evil", "stderr"))
    for stream in ("stdout", "stderr"):
        kept = collect(result, "evil", stream, 1024)
        assert "do not serve me" not in kept.text and "not a regular file" in kept.text
    assert (
        not (result / "stdout.log").exists() or "do not" not in (result / "stdout.log").read_text()
    )
