"""The state model: status strings, states in words, stages."""

import pytest

from pacifica.dispatcher_proxymod.states import Stage, TaskState, TaskStatus, state_of


def test_every_status_has_one_state_and_back() -> None:
    assert {status.state for status in TaskStatus} == set(TaskState)
    for status in TaskStatus:
        assert status.state.status is status


@pytest.mark.parametrize(
    ("status", "state", "final"),
    [
        ("202 Accepted", "waiting", False),
        ("102 Processing", "running", False),
        ("200 OK", "succeeded", True),
        ("422 Unprocessable Entity", "rejected", True),
        ("500 Internal Server Error", "failed", True),
        ("499 Cancelled", "cancelled", True),
    ],
)
def test_state_of_a_stored_status(status: str, state: str, final: bool) -> None:
    assert state_of(status) == state
    assert state_of(status).final is final


def test_only_ended_unsuccessful_tasks_can_be_retried() -> None:
    assert {s for s in TaskState if s.retryable} == {"failed", "rejected", "cancelled"}


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        state_of("418 I'm a teapot")


def test_stages_are_words() -> None:
    assert [str(s) for s in Stage] == ["validate", "download", "model", "upload", "internal"]
