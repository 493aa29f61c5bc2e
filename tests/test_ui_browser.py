"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, via selenium).

A real service (web app and a Celery worker) runs three events: the example, one whose model
raises, and a hostile one (``<script>`` and ``<img onerror>`` in its event id, a key/value and a
model's output). The tests look at what a person sees, check that the browser logged no error
(a Content-Security-Policy violation is one), and that nothing hostile ran. Screenshots go to
``.artifacts/screenshots/`` (git-ignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from httpserver import serving
from test_e2e import start_worker, stop_worker, wait_final

from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.web import create_app

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[1] / ".artifacts" / "screenshots"
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

BROKEN_MODEL = '''\
"""A model that fails in its own code: the traceback names this file and line 7."""


def broken(config_1, config_2, config_3):
    print("reading the inputs of", config_1)
    values = {"year": 2010}
    return values["value"]
'''
HOSTILE_MODEL = f"""\
def hostile(config_1, config_2, config_3):
    print({HOSTILE!r})
    raise ValueError({HOSTILE!r})
"""

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs chromium and chromium-driver (installed by .ci/run)")
    pytest.skip("no chromium / chromedriver here", allow_module_level=True)


def _with_model(event: dict[str, Any], data_dir: Path, name: str, text: str) -> dict[str, Any]:
    """The example event with its models replaced by ``models/<name>.py`` holding ``text``."""
    path = data_dir / "models" / f"{name}.py"
    path.write_text(text)
    content = path.read_bytes()
    document = json.loads(json.dumps(event))
    files = [e for e in document["data"] if e["destinationTable"] == "Files"]
    model = next(e for e in files if e["subdir"] == "models")
    document["data"] = [
        e
        for e in document["data"]
        if not (e["destinationTable"] == "Files" and e["subdir"] == "models")
    ]
    entry = dict(model, name=f"{name}.py", size=len(content))
    entry["hashsum"] = hashlib.sha1(content, usedforsecurity=False).hexdigest()
    document["data"].insert(0, entry)
    document["eventID"] = f"metadata.ingest.1101.{name}"
    return document


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A web app and a worker that ran the three events to their end."""
    from conftest import EXAMPLE_DATA, EXAMPLE_EVENT, broker_url, database_url

    from pacifica.dispatcher_proxymod import store
    from pacifica.dispatcher_proxymod.settings import ModelLimits

    tmp = tmp_path_factory.mktemp("browser")
    data = tmp / "data"
    shutil.copytree(EXAMPLE_DATA, data)
    state = tmp / "state"
    settings = Settings(
        database_url=database_url(tmp),
        broker_url=broker_url(),
        state_dir=state,
        work_dir=state / "work",
        transfer="local",
        data_dir=data,
        output_dir=tmp / "results",
        limits=ModelLimits(timeout_seconds=60, cpu_seconds=60, memory_mb=1024),
        heartbeat_seconds=0.5,
        stale_after_seconds=5,
        recovery_interval_seconds=1,
    )
    store.open_database(settings)
    with store.connection():
        store.Task.delete().execute()
        store.TaskChart.delete().execute()
    example = json.loads(EXAMPLE_EVENT.read_text())
    broken = _with_model(example, data, "broken", BROKEN_MODEL)
    hostile = _with_model(example, data, "hostile", HOSTILE_MODEL)
    hostile["eventID"] = HOSTILE
    hostile["data"].append(
        {"destinationTable": "TransactionKeyValue", "key": HOSTILE, "value": HOSTILE}
    )
    worker = start_worker(settings, tmp / "worker.log")
    try:
        with serving(create_app(settings)) as url:
            ids = {}
            for name, event in (("example", example), ("broken", broken), ("hostile", hostile)):
                answer = requests.post(f"{url}/receive", json=event, timeout=30)
                assert answer.status_code == 202, answer.text
                ids[name] = answer.json()["taskID"]
            for task_id in ids.values():
                wait_final(url, task_id)
            yield {"url": url, "ids": ids, "settings": settings}
    finally:
        stop_worker(worker)
        store.close_database()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver: Any, url: str, shot: str, width: int = 1280) -> None:
    """Load ``url``, check the console stayed clean, and save a full-page screenshot."""
    driver.set_window_size(width, 900)
    driver.get(url)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 300, 12000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{shot}.png"))
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - raises when no dialog is open
    assert driver.execute_script("return window.__pwned === undefined")


def test_the_list_shows_the_runs_with_states_and_reasons(
    browser: Any, service: dict[str, Any]
) -> None:
    _open(browser, f"{service['url']}/ui/", "list")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.run")
    assert len(rows) == 3
    states = sorted(row.find_element(By.CSS_SELECTOR, ".state").text for row in rows)
    assert states == ["failed", "failed", "succeeded"]
    reasons = [row.find_element(By.CSS_SELECTOR, ".reason").text for row in rows]
    assert any("broken" in reason and "KeyError" in reason for reason in reasons)
    counts = browser.find_element(By.CSS_SELECTOR, ".counts").text
    assert "succeeded 1" in counts and "failed 2" in counts
    _open(browser, f"{service['url']}/ui/", "list-phone", width=390)


def test_a_long_reason_takes_three_lines_in_the_list(browser: Any, service: dict[str, Any]) -> None:
    _open(browser, f"{service['url']}/ui/", "list")
    cell = browser.find_element(By.CSS_SELECTOR, "tr.run .reason .clamp")
    assert cell.get_attribute("title") == cell.text  # the whole reason on hover
    lines = browser.execute_script(
        "const el = arguments[0]; el.textContent = 'a long reason, '.repeat(100);"
        "const style = getComputedStyle(el);"
        "return el.getBoundingClientRect().height / parseFloat(style.lineHeight);",
        cell,
    )
    assert 2.5 < lines < 3.5, lines  # a row stays three lines tall, however long the reason


def test_the_example_run_page_draws_a_chart_per_model_and_config(
    browser: Any, service: dict[str, Any]
) -> None:
    _open(browser, f"{service['url']}/ui/task/{service['ids']['example']}", "run-example")
    assert browser.find_element(By.CSS_SELECTOR, "h1 .state").text == "succeeded"
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart-box svg")
    assert len(charts) == 9
    for chart in charts:
        assert len(chart.find_elements(By.CSS_SELECTOR, "path.series")) == 2
        assert chart.size["width"] > 300  # drawn, not collapsed
    titles = [c.find_element(By.CSS_SELECTOR, "text.title").text for c in charts]
    assert "loose_coupling · config_1" in titles
    timeline = browser.find_element(By.CSS_SELECTOR, "table.timeline").text
    assert "model tight_coupling ended: ok" in timeline and "finished: succeeded" in timeline
    files = browser.find_elements(By.CSS_SELECTOR, "table.files a")
    assert any(a.text == "plots/loose_coupling__config_1.svg" for a in files)
    _open(browser, f"{service['url']}/ui/task/{service['ids']['example']}", "run-phone", width=390)


def test_a_failing_model_shows_its_reason_and_logs(browser: Any, service: dict[str, Any]) -> None:
    _open(browser, f"{service['url']}/ui/task/{service['ids']['broken']}", "run-failed")
    assert browser.find_element(By.CSS_SELECTOR, "h1 .state").text == "failed"
    reason = browser.find_element(By.CSS_SELECTOR, ".reason-box").text
    assert "broken" in reason and "KeyError" in reason
    model = browser.find_element(By.CSS_SELECTOR, "article.model-failed")
    assert "broken" in model.find_element(By.CSS_SELECTOR, "h3").text
    traceback = model.find_element(By.CSS_SELECTOR, "pre.traceback").text  # open for a failure
    assert 'broken.py", line 7, in broken' in traceback and "KeyError: 'value'" in traceback
    assert "run_model.py" not in traceback  # the user's frames only
    assert "KeyError" in model.find_element(By.CSS_SELECTOR, "pre.stderr").text  # open too
    stdout = next(s for s in model.find_elements(By.TAG_NAME, "summary") if s.text == "stdout")
    stdout.click()  # closed at first
    assert "reading the inputs of" in model.find_element(By.CSS_SELECTOR, "pre.stdout").text


def test_a_hostile_event_shows_as_text_and_runs_nothing(
    browser: Any, service: dict[str, Any]
) -> None:
    _open(browser, f"{service['url']}/ui/", "list-with-hostile")
    _open(browser, f"{service['url']}/ui/task/{service['ids']['hostile']}", "run-hostile")
    assert browser.find_element(By.CSS_SELECTOR, "h1 .event-id").text == HOSTILE
    page = browser.find_element(By.TAG_NAME, "main").text
    assert page.count(HOSTILE) >= 3  # the event id, the key/value's key and value
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []
