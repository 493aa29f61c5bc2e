"""``GET /metrics`` over real HTTP after real tasks ran through a real worker: the figures
equal what the API lists."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import requests
from conftest import edited_event
from httpserver import serving
from prometheus_client.parser import text_string_to_metric_families
from test_e2e import start_worker, stop_worker, wait_final

from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import state_of
from pacifica.dispatcher_proxymod.web import create_app


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _variant(example_event: dict[str, Any], event_id: str, key: str, value: str) -> dict[str, Any]:
    return edited_event(example_event, event_id, values={key: value})


def test_metrics_equal_what_the_api_lists(
    open_store: Settings, example_event: dict[str, Any], tmp_path: Path
) -> None:
    events = [
        example_event,
        _variant(example_event, "fails", "proxymod.config_2.PROJECT.failure", "1"),
        _variant(example_event, "rejected", "proxymod.config_1.OUTPUTS.out_dir", "../../x"),
    ]
    worker = start_worker(open_store, tmp_path / "worker.log")
    try:
        with serving(create_app(open_store)) as url:
            empty = _samples(requests.get(f"{url}/metrics", timeout=10).text)
            ids = [
                requests.post(f"{url}/receive", json=e, timeout=30).json()["taskID"] for e in events
            ]
            for task_id in ids:
                wait_final(url, task_id)
            # one more, left waiting: the worker is stopped first
            stop_worker(worker)
            waiting = requests.post(
                f"{url}/receive", json=dict(example_event, eventID="waits"), timeout=30
            )
            listed = requests.get(f"{url}/?size=100", timeout=10).json()["tasks"]
            records = [requests.get(f"{url}/get/{t['taskID']}", timeout=10).json() for t in listed]
            answer = requests.get(f"{url}/metrics", timeout=10)
    finally:
        stop_worker(worker)
    assert waiting.status_code == 202
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    assert empty[("pacifica_dispatcher_tasks", (("state", "waiting"),))] == 0
    figures = _samples(answer.text)
    assert figures[("pacifica_dispatcher_store_up", ())] == 1
    sent = ("pacifica_dispatcher_messages_total", (("outcome", "sent"),))
    left = ("pacifica_dispatcher_messages_total", (("outcome", "left_to_recovery"),))
    assert (empty[sent], figures[sent], figures[left]) == (0, 4, 0), "each accepted task's message"
    states = Counter(state_of(task["status"]).value for task in listed)
    assert states == {"succeeded": 1, "failed": 1, "rejected": 1, "waiting": 1}
    for state in ("waiting", "running", "succeeded", "rejected", "failed", "cancelled"):
        assert figures[("pacifica_dispatcher_tasks", (("state", state),))] == states[state], state
    outcomes = Counter(run["outcome"] for record in records for run in record["models"])
    assert outcomes == {"ok": 3, "error": 3}  # the failing config fails each model
    for outcome in ("ok", "error", "timeout", "limit", "killed"):
        key = ("pacifica_dispatcher_model_runs_total", (("outcome", outcome),))
        assert figures[key] == outcomes[outcome], outcome
        count = ("pacifica_dispatcher_model_duration_seconds_count", (("outcome", outcome),))
        assert figures[count] == outcomes[outcome]
    durations = [run["duration_seconds"] for r in records for run in r["models"]]
    total = sum(
        v
        for (name, _), v in figures.items()
        if name == "pacifica_dispatcher_model_duration_seconds_sum"
    )
    assert abs(total - sum(durations)) < 0.01
    ran = [r for r in records if r["started"] and r["finished"]]
    assert figures[("pacifica_dispatcher_queue_wait_seconds_count", ())] == len(ran) == 3
    for state in ("succeeded", "failed", "rejected"):
        key = ("pacifica_dispatcher_tasks_finished_total", (("state", state),))
        assert figures[key] == 1, state
    infinite = (
        "pacifica_dispatcher_task_duration_seconds_bucket",
        (("le", "+Inf"), ("state", "failed")),
    )
    assert figures[infinite] == 1
    # this web process's own counters
    assert figures[("pacifica_dispatcher_receive_seconds_count", ())] == 4
    assert figures[("pacifica_dispatcher_http_requests_total", (("code", "202"),))] == 4
    assert figures[("pacifica_dispatcher_http_requests_total", (("code", "200"),))] >= 6
    assert "taskID" not in answer.text and ids[0] not in answer.text
