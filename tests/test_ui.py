"""The dashboard over real HTTP: what the pages show, escaping, headers, auth, downloads, off."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from httpserver import serving

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.charts import Chart, make_series
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus
from pacifica.dispatcher_proxymod.store import Outcome
from pacifica.dispatcher_proxymod.web import create_app
from pacifica.dispatcher_proxymod.web.ui import views

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _record(document: dict[str, Any], event_id: str) -> store.Task:
    document = dict(document, eventID=event_id)
    event = parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())
    return store.record_event(event, TaskStatus.ACCEPTED, route="proxymod").task


def _finish(task: store.Task, outcome: Outcome) -> None:
    assert store.claim(task.id, "w", 60) is store.Claim.CLAIMED
    assert store.finish(task.id, "w", outcome)


@pytest.fixture
def served(open_store: Settings) -> Iterator[tuple[str, Settings]]:
    with serving(create_app(open_store)) as url:
        yield url, open_store


def test_the_list_shows_counts_states_reasons_and_rows(
    served: tuple[str, Settings], example_event: dict[str, Any]
) -> None:
    url, _ = served
    ok = _record(example_event, "run-ok")
    _finish(ok, Outcome(TaskStatus.OK))
    failed = _record(example_event, "run-failed")
    reason = "model broken: raised KeyError: 'value' (models/broken.py, line 7)"
    _finish(failed, Outcome(TaskStatus.FAILED, error_type="ModelFailed", error_message=reason))
    _record(example_event, "run-waiting")
    page = requests.get(f"{url}/ui/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.text
    assert html.count('<tr class="run">') == 3
    for word in ("succeeded", "failed", "waiting"):
        assert f'class="state state-{word}">{word}</span>' in html
    assert "model broken: raised KeyError: &#39;value&#39; (models/broken.py, line 7)" in html
    counts = dict(re.findall(r"state-(\w+)\">\w+</span> <strong>(\d+)</strong>", html))
    assert counts == {
        "waiting": "1",
        "running": "0",
        "succeeded": "1",
        "rejected": "0",
        "failed": "1",
        "cancelled": "0",
    }
    assert "1101" in html and "10 · 1234a · 54" in html
    assert 'data-refresh="5"' in html  # a run is waiting
    assert f'href="/ui/task/{failed.id}"' in html


def test_the_run_page_shows_event_timeline_models_charts_configs(
    served: tuple[str, Settings], example_event: dict[str, Any]
) -> None:
    url, _ = served
    task = _record(example_event, "run-page")
    chart = Chart("loose_coupling", "config_1", (make_series("output1", [(2010, 1), (2015, 2)]),))
    model = {
        "model": "loose_coupling",
        "started": "2026-01-01T00:00:00+00:00",
        "ended": "2026-01-01T00:00:01.500000+00:00",
        "duration_seconds": 1.5,
        "exit_code": 101,
        "signal": None,
        "signal_name": None,
        "outcome": "error",
        "limit": None,
        "reason": "model loose_coupling: raised KeyError",
        "isolation": "bwrap",
    }
    _finish(
        task,
        Outcome(
            TaskStatus.FAILED,
            models=[model],
            error_type="ModelFailed",
            error_message="model loose_coupling: raised KeyError",
            charts=[chart.to_json()],
        ),
    )
    page = requests.get(f"{url}/ui/task/{task.id}", timeout=10)
    assert page.status_code == 200
    html = page.text
    assert "<h2>Event</h2>" in html and "metadata.pacifica.org/transactions?_id=1101" in html
    assert "Input transaction</dt><dd>1101" in html
    assert "model loose_coupling ended: error" in html
    assert html.count('class="series"') == 1 and "loose_coupling · config_1" in html
    assert "<h3>config_3</h3>" in html and "PROJECT.runtime" in html
    assert "in_file_one.csv" in html and "text/x-python" in html
    assert "Exit status</dt><dd>101" in html and "1.5 s" in html
    assert "data-refresh" not in html  # final: no refresh


def test_event_and_model_text_is_escaped_and_no_inline_script_runs(
    served: tuple[str, Settings], example_event: dict[str, Any]
) -> None:
    url, _ = served
    document = json.loads(json.dumps(example_event))
    for entry in document["data"]:
        if entry.get("destinationTable") == "Transactions.submitter":
            entry["value"] = HOSTILE
    document["data"].append(
        {"destinationTable": "TransactionKeyValue", "key": HOSTILE, "value": HOSTILE}
    )
    task = _record(document, HOSTILE)
    hostile_chart = Chart(HOSTILE, "config_1", (make_series(HOSTILE, [(1, 1), (2, 2)]),))
    _finish(
        task,
        Outcome(TaskStatus.FAILED, error_message=HOSTILE, charts=[hostile_chart.to_json()]),
    )
    for path in ("/ui/", f"/ui/task/{task.id}"):
        answer = requests.get(f"{url}{path}", timeout=10)
        html = answer.text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(" in html, path
        scripts = re.findall(r"<script[^>]*>", html)
        assert scripts == ['<script src="/ui/static/ui.js" defer>'], path
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_and_malformed_runs_are_404_pages(served: tuple[str, Settings]) -> None:
    url, _ = served
    for path in ("/ui/task/00000000-0000-0000-0000-000000000000", "/ui/task/nope"):
        answer = requests.get(f"{url}{path}", timeout=10)
        assert answer.status_code == 404 and "There is no run" in answer.text


def test_static_files_are_served(served: tuple[str, Settings]) -> None:
    url, _ = served
    css = requests.get(f"{url}/ui/static/ui.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    js = requests.get(f"{url}/ui/static/ui.js", timeout=10)
    assert js.status_code == 200 and "data-refresh" in js.text
    assert requests.get(f"{url}/ui/static/../settings.py", timeout=10).status_code == 404


def test_result_files_of_the_local_transfer_download_as_attachments(
    served: tuple[str, Settings], example_event: dict[str, Any], tmp_path: Path
) -> None:
    url, settings = served
    assert settings.output_dir is not None
    result = settings.output_dir / "result-1"
    (result / "plots").mkdir(parents=True)
    (result / "stdout.log").write_text("hello\n")
    (result / "plots" / "evil.svg").write_text("<svg onload=alert(1)></svg>")
    (result / "link.txt").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").write_text("secret")
    task = _record(example_event, "downloads")
    _finish(task, Outcome(TaskStatus.OK, result_location=str(result)))
    html = requests.get(f"{url}/ui/task/{task.id}", timeout=10).text
    assert f"/ui/task/{task.id}/file/stdout.log" in html and "link.txt" not in html
    log = requests.get(f"{url}/ui/task/{task.id}/file/stdout.log", timeout=10)
    assert log.text == "hello\n" and log.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert log.headers["Content-Disposition"] == 'attachment; filename="stdout.log"'
    svg = requests.get(f"{url}/ui/task/{task.id}/file/plots/evil.svg", timeout=10)
    assert svg.headers["Content-Type"] == "application/octet-stream"
    assert "sandbox" in svg.headers["Content-Security-Policy"]
    for path in ("link.txt", "../result-1/stdout.log", "nothing"):
        answer = requests.get(f"{url}/ui/task/{task.id}/file/{path}", timeout=10)
        assert answer.status_code == 404, path


def test_with_auth_the_dashboard_asks_for_credentials(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    settings = open_store.with_changes(auth="basic", auth_username="u", auth_password="s3cret-pw")
    with serving(create_app(settings)) as url:
        for path in ("/ui/", "/ui/task/00000000-0000-0000-0000-000000000000"):
            answer = requests.get(f"{url}{path}", timeout=10)
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"] == 'Basic realm="dispatcher"'
            assert "s3cret-pw" not in answer.text and "Sign in needed" in answer.text
        assert requests.get(f"{url}/ui/", auth=("u", "s3cret-pw"), timeout=10).status_code == 200
        assert requests.get(f"{url}/ui/", auth=("u", "wrong"), timeout=10).status_code == 401


def test_the_dashboard_can_be_turned_off(open_store: Settings) -> None:
    settings = open_store.with_changes(ui=False)
    with serving(create_app(settings)) as url:
        assert requests.get(f"{url}/ui/", timeout=10).status_code == 404
        assert requests.get(f"{url}/", timeout=10).status_code == 200


def test_views_helpers() -> None:
    assert views.duration_text(0.42) == "0.4 s"
    assert views.duration_text(185) == "3 min 5 s"
    assert views.duration_text(7300) == "2 h 1 min"
    assert views.duration_text(None) == ""
    assert views.one_line("first\nsecond") == "first"
    assert len(views.one_line("x" * 1000)) == views.REASON_CHARS
    facts = views.upload_facts([{"destinationTable": "Transactions.submitter", "value": 7}, 3])
    assert facts.submitter == "7" and facts.files == ()
    configs, others = views.config_views(
        [("proxymod.config_2.PROJECT.runtime", "0"), ("proxymod.task", "advance")]
    )
    assert [c.name for c in configs] == ["config_2"] and others == [("proxymod.task", "advance")]


def _token(session: requests.Session, url: str) -> str:
    html = session.get(url, timeout=10).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the run page has a form with a token"
    return found.group(1)


def test_the_list_filters_like_get_slash_and_pages(
    open_store: Settings, example_event: dict[str, Any]
) -> None:
    settings = open_store.with_changes(page_size=2)
    for name in ("alpha-1", "alpha-2", "alpha-3"):
        _finish(_record(example_event, name), Outcome(TaskStatus.OK))
    _finish(_record(example_event, "beta"), Outcome(TaskStatus.FAILED, error_message="boom"))
    with serving(create_app(settings)) as url:
        html = requests.get(f"{url}/ui/?state=failed", timeout=10).text
        assert html.count('<tr class="run">') == 1 and ">beta</a>" in html
        assert 'value="failed" checked' in html
        html = requests.get(f"{url}/ui/?q=alpha", timeout=10).text
        assert html.count('<tr class="run">') == 2 and "page 1 of 2" in html
        assert 'href="/ui/?q=alpha&amp;page=2"' in html
        counts = dict(re.findall(r"state-(\w+)\">\w+</span> <strong>(\d+)</strong>", html))
        assert counts["succeeded"] == "3" and counts["failed"] == "0"  # within the search
        second = requests.get(f"{url}/ui/?q=alpha&page=2", timeout=10).text
        assert second.count('<tr class="run">') == 1 and ">alpha-1</a>" in second
        api = requests.get(f"{url}/?q=alpha&page=2&size=2", timeout=10).json()
        assert [t["eventID"] for t in api["tasks"]] == ["alpha-1"]  # the same query
        bad = requests.get(f"{url}/ui/?state=sleeping", timeout=10)
        assert bad.status_code == 400 and "&#39;sleeping&#39; is not a state" in bad.text


def test_retry_and_cancel_need_the_form_s_token(
    served: tuple[str, Settings], example_event: dict[str, Any]
) -> None:
    url, _ = served
    failed = _record(example_event, "to-retry")
    _finish(failed, Outcome(TaskStatus.FAILED, error_message="boom"))
    page = f"{url}/ui/task/{failed.id}"
    with requests.Session() as browser:
        token = _token(browser, page)
        assert browser.get(f"{page}/retry", timeout=10).status_code == 405
        assert browser.post(f"{page}/retry", timeout=10).status_code == 403
        forged = browser.post(
            f"{page}/retry",
            data={"csrf_token": token},
            headers={"Origin": "http://evil.example"},
            timeout=10,
        )
        assert forged.status_code == 403
        with requests.Session() as stranger:  # a token without its cookie is not enough
            assert stranger.post(f"{page}/retry", data={"csrf_token": token}).status_code == 403
        task = store.get_task(failed.id)
        assert task is not None and task.status == TaskStatus.FAILED.value
        done = browser.post(
            f"{page}/retry", data={"csrf_token": token}, timeout=10, allow_redirects=False
        )
        assert done.status_code == 303 and done.headers["Location"].startswith(page)
        task = store.get_task(failed.id)
        assert task is not None and task.status == TaskStatus.ACCEPTED.value
        shown = browser.get(done.headers["Location"], timeout=10).text
        assert "Queued again as attempt 2." in shown and ">Cancel</button>" in shown
        again = browser.post(f"{page}/retry", data={"csrf_token": token}, timeout=10)
        assert "Not done: task" in again.text and "only failed, rejected or cancelled" in again.text
        cancelled = browser.post(f"{page}/cancel", data={"csrf_token": token}, timeout=10)
        assert "Cancelled." in cancelled.text
        task = store.get_task(failed.id)
        assert task is not None and task.status == TaskStatus.CANCELLED.value


def test_result_transaction_links_to_metadata_only_for_http_sources() -> None:
    source = "http://metadata.pacifica.org/transactions?_id=1101"
    assert (
        views.transaction_link(source, 2202) == "http://metadata.pacifica.org/transactions?_id=2202"
    )
    assert views.transaction_link("javascript:alert(1)//transactions?_id=1", 2) == ""
    assert views.transaction_link("/pacifica/metadata/ingest", 2) == ""
    assert views.transaction_link(source, None) == ""
