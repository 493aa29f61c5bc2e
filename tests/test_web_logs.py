"""``GET /logs/<id>`` over real HTTP after a real worker ran the models; ``logs ID`` the same."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import edited_event
from httpserver import serving
from test_e2e import start_worker, stop_worker, wait_final

from pacifica.dispatcher_proxymod import cli
from pacifica.dispatcher_proxymod.settings import Settings, environment_for
from pacifica.dispatcher_proxymod.web import create_app

MODELS = ("loose_coupling", "tight_coupling", "tight_coupling_twoway")


def test_each_models_logs_over_http_and_the_command_line(
    open_store: Settings,
    example_event: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = open_store.with_changes(keep_work="always")
    failing = edited_event(example_event, values={"proxymod.config_2.PROJECT.failure": "1"})
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with serving(create_app(settings)) as url:
            task_id = requests.post(f"{url}/receive", json=failing, timeout=30).json()["taskID"]
            assert wait_final(url, task_id) == "500 Internal Server Error"
            result = Path(
                requests.get(f"{url}/get/{task_id}", timeout=10).json()["result"]["location"]
            )
            everything = requests.get(f"{url}/logs/{task_id}", timeout=10)
            one = requests.get(
                f"{url}/logs/{task_id}?model=tight_coupling&stream=stdout", timeout=10
            )
            errors = requests.get(f"{url}/logs/{task_id}", params={"stream": "stderr"}, timeout=10)
            answers = {
                "bad stream": requests.get(f"{url}/logs/{task_id}?stream=both", timeout=10),
                "unknown parameter": requests.get(f"{url}/logs/{task_id}?modle=x", timeout=10),
                "twice": requests.get(f"{url}/logs/{task_id}?model=a&model=b", timeout=10),
                "unknown model": requests.get(f"{url}/logs/{task_id}?model=nope", timeout=10),
                "unknown task": requests.get(f"{url}/logs/{uuid.uuid4()}", timeout=10),
                "malformed id": requests.get(f"{url}/logs/not-a-uuid", timeout=10),
            }
    finally:
        stop_worker(worker)
    assert everything.status_code == 200
    assert everything.headers["Content-Type"] == "text/plain; charset=utf-8"
    for model in MODELS:
        assert f"==> {model} stdout <==\n" in everything.text
        assert f"==> {model} stderr <==\n" in everything.text
        # the result tree has each model's own logs beside the combined ones
        own = (result / "logs" / f"{model}.stdout.log").read_text()
        assert "Starting " in own, own
        assert own in (result / "stdout.log").read_text()
    assert one.status_code == 200 and not one.text.startswith("==>")
    assert one.text == (result / "logs" / "tight_coupling.stdout.log").read_text()
    assert "You raised an error on purpose" in errors.text and "stdout <==" not in errors.text
    assert {name: a.status_code for name, a in answers.items()} == {
        "bad stream": 422,
        "unknown parameter": 422,
        "twice": 422,
        "unknown model": 404,
        "unknown task": 404,
        "malformed id": 422,
    }
    assert answers["bad stream"].json()["parameter"] == "stream"
    assert "models: loose_coupling, tight_coupling" in answers["unknown model"].json()["message"]
    # the command line prints the same text through the same code path
    for key, value in environment_for(settings, {}).items():
        monkeypatch.setenv(key, value)
    assert cli.main(["logs", task_id, "--model", "tight_coupling", "--stream", "stdout"]) == 0
    assert capsys.readouterr().out == one.text
    assert cli.main(["logs", task_id]) == 0
    assert capsys.readouterr().out == everything.text
    assert cli.main(["logs", task_id, "--model", "nope"]) == 1


def test_logs_need_the_credentials_reads_need(open_store: Settings) -> None:
    settings = open_store.with_changes(auth="bearer", auth_token="t0ken")
    with serving(create_app(settings)) as url:
        missing = str(uuid.uuid4())
        denied = requests.get(f"{url}/logs/{missing}", timeout=10)
        allowed = requests.get(
            f"{url}/logs/{missing}", headers={"Authorization": "Bearer t0ken"}, timeout=10
        )
    assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == "Bearer"
    assert allowed.status_code == 404
