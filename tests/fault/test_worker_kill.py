"""SIGKILL the whole worker while a model runs: after a restart the task ends, delivered once."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.states import TaskStatus

from .harness import (
    Dispatcher,
    FaultData,
    ModelConfig,
    Web,
    Worker,
    accepted_id,
    model_pids,
    model_runner_pids,
    post_event,
    task_row,
    wait_final,
)
from .services import wait_until

pytestmark = pytest.mark.fault

MODEL_SECONDS = 4


def test_sigkill_worker_while_model_runs(
    make_dispatcher: Callable[..., Dispatcher],
    fault_data: FaultData,
    processes: list[Worker | Web],
) -> None:
    dispatcher = make_dispatcher("rabbitmq")
    first = Worker(dispatcher, "first")
    processes.append(first)
    web = Web(dispatcher)
    processes.append(web)
    first.wait_ready()
    # the example's loose coupling model: config_1 sleeps MODEL_SECONDS before model 1 starts
    configs = (ModelConfig(runtime=MODEL_SECONDS), ModelConfig(), ModelConfig())
    event = fault_data.event("kill-me", configs, model="loose_coupling.py")
    task_id = accepted_id(post_event(web.url, event))

    runners = wait_until(lambda: model_runner_pids(task_id), 60, "the model to start")
    assert task_row(task_id).task_status is TaskStatus.PROCESSING
    first.kill()
    # nothing of the killed run survives it: the sandbox dies with its parent
    wait_until(lambda: not model_pids(task_id), 30, f"the model processes {runners} to die")
    assert dispatcher.result_folders() == [], "the killed run delivered nothing"
    assert task_row(task_id).task_status is TaskStatus.PROCESSING, "the row waits for recovery"

    second = Worker(dispatcher, "second")
    processes.append(second)
    task = wait_final(task_id, 120, f"after the restart ({second.tail()})")

    assert task.task_status is TaskStatus.OK, (task.error_message, second.tail())
    assert task.attempts == 2, "one killed attempt, one complete attempt"
    history = [(a.number, a.state, a.reason) for a in store.history(task_id)]
    assert history == [
        (1, "failed", "worker lost: it stopped sending heartbeats"),
        (2, "succeeded", None),
    ], "the history says why attempt 1 ended"
    assert [run["outcome"] for run in json.loads(task.models_json)] == ["ok"]
    folders = dispatcher.result_folders()
    assert len(folders) == 1, f"exactly one result delivered, found {folders}"
    assert task.result_location == str(folders[0])
    assert (folders[0] / "outputs").is_dir()
    manifest = json.loads((folders[0] / "manifest.json").read_text())
    assert manifest["task"] == task_id and manifest["status"] == "succeeded"
    # a late duplicate of the message changes nothing
    assert post_event(web.url, event).status_code == 200
    assert task_row(task_id).attempts == 2
