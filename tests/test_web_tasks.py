"""The read API's filters over real HTTP: ``GET /?state=&since=&until=&q=`` and bad values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from httpserver import serving

from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app


@pytest.fixture
def base_url(open_store: Settings) -> Iterator[str]:
    with serving(create_app(open_store)) as url:
        yield url


def _post(url: str, event: dict[str, Any]) -> str:
    answer = requests.post(
        f"{url}/receive",
        data=json.dumps(event),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["taskID"]
    return task_id


def _list(url: str, query: str) -> dict[str, Any]:
    answer = requests.get(f"{url}/?{query}", timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_filters_by_state_text_and_time(base_url: str, example_event: dict[str, Any]) -> None:
    waiting = [_post(base_url, dict(example_event, eventID=f"run-{n}")) for n in range(3)]
    rejected = _post(
        base_url, dict(example_event, eventID="orm-1", eventType="org.pacifica.metadata.orm")
    )

    only_rejected = _list(base_url, "state=rejected")
    assert [t["taskID"] for t in only_rejected["tasks"]] == [rejected]
    entry = only_rejected["tasks"][0]
    assert entry["state"] == "rejected" and entry["stage"] == "validate"
    assert "org.pacifica.metadata.orm" in entry["reason"]
    assert entry["inputTransaction"] == "1101" and entry["attempt"] == 0
    assert entry["finished"] is not None and entry["created"].endswith("Z")

    both = _list(base_url, "state=waiting&state=rejected&size=2")
    assert both["total"] == 4 and len(both["tasks"]) == 2
    assert both["next"] == "/?state=waiting&state=rejected&page=2&size=2"
    assert _list(base_url, both["next"][2:])["total"] == 4
    waiting_entry = _list(base_url, "state=waiting&size=1")["tasks"][0]
    assert waiting_entry["state"] == "waiting" and waiting_entry["reason"] is None

    assert [t["taskID"] for t in _list(base_url, "q=RUN-1")["tasks"]] == [waiting[1]]
    assert _list(base_url, "q=1101")["total"] == 4
    assert _list(base_url, "since=2999-01-01T00:00:00Z")["total"] == 0
    assert _list(base_url, "until=2999-01-01")["total"] == 4
    assert _list(base_url, "since=2000-01-01T00:00:00%2B02:00&state=waiting")["total"] == 3


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=failed", "status"),
        ("state=broken", "state"),
        ("state=failed&state=nope", "state"),
        ("since=yesterday", "since"),
        ("until=2026-02-30", "until"),
        ("page=0", "page"),
        ("size=x", "size"),
        ("q=%00", "q"),
    ],
)
def test_unknown_parameter_or_bad_value_is_422_naming_it(
    base_url: str, query: str, parameter: str
) -> None:
    answer = requests.get(f"{base_url}/?{query}", timeout=10)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "InvalidParameter" and body["parameter"] == parameter
    assert body["message"].startswith(f"{parameter}: ")
