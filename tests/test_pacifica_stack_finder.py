"""The Pacifica stack is probed before a test trusts its stack.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pacifica_stack_finder as finder
import pytest


@pytest.fixture
def stale_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stack root whose stack.json names services that are not running."""
    (tmp_path / "stack.json").write_text(json.dumps({"services": {"ingest": "http://127.0.0.1:1"}}))
    monkeypatch.setattr(finder, "STACK_ROOT", tmp_path)
    monkeypatch.delenv("DISPATCHER_PACIFICA_STACK_START", raising=False)
    monkeypatch.delenv("CI", raising=False)
    finder._outcome.cache_clear()
    yield tmp_path
    finder._outcome.cache_clear()


def test_a_stale_stack_json_is_probed_and_skipped_naming_what_is_down(stale_root: Path) -> None:
    with pytest.raises(pytest.skip.Exception) as skipped:
        finder.find_stack()
    reason = str(skipped.value)
    assert "not answering: " in reason and "ingest" in reason
    assert "tests/integration/stack/pacifica_stack.py up" in reason


def test_in_ci_a_stack_that_will_not_answer_fails(
    stale_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("DISPATCHER_INTEGRATION", "1")
    monkeypatch.setattr(finder, "start", lambda: "refused for the test")
    with pytest.raises(pytest.fail.Exception, match="starting it failed: refused for the test"):
        finder.find_stack()
