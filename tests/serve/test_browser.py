"""The dashboard in a real browser: submit examples through the form, watch them complete,
read their run pages.

``crucible-actors serve`` runs as a subprocess on a free loopback port with a fresh SQLite
store, ``examples/`` on ``PYTHONPATH`` and a ``crucible.toml`` in its working directory
that registers the example stages. Debian's Chromium runs headless under Selenium with the
system chromedriver given explicitly, so Selenium Manager never downloads anything. The
tests skip when chromium or chromedriver is missing; ``.ci/run`` installs both.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest
from tests.helpers import missing_extra

from crucible_actors import InvalidExperiment, load_experiment

pytest.importorskip("selenium", reason=missing_extra("dev"))

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

if TYPE_CHECKING:
    from collections.abc import Iterator

    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 30.0
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)
# The examples reference these as "example_stages:NAME"; the service only runs registered
# stages, and the dashboard sends a reference the registry serves under its name.
CRUCIBLE_TOML = """\
[stages]
seed = "example_stages:seed"
scores = "example_stages:scores"
choose_model = "example_stages:choose_model"
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver)",
    ),
]


def _cli(cwd: Path, *argv: str) -> str:
    """Run ``crucible-actors *argv`` in a subprocess on the SQLite store in ``cwd``; its stdout."""
    env = dict(os.environ)
    env.pop("CRUCIBLE_STORE_URL", None)
    store = f"sqlite:///{cwd / 'store.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "crucible_actors", *argv, "--store", store],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _pump(stream: Any, lines: queue.Queue[str], log: list[str]) -> None:
    for line in stream:
        log.append(line)
        lines.put(line)


@contextmanager
def _serving(cwd: Path, *args: str) -> Iterator[str]:
    """Run ``crucible-actors serve`` in ``cwd`` on a free port; yield its base URL.

    ``cwd`` gets the ``crucible.toml`` registering the example stages and the SQLite store;
    ``args`` go on the command line. The server is stopped with SIGTERM on exit.
    """
    (cwd / "crucible.toml").write_text(CRUCIBLE_TOML, encoding="utf-8")
    env = dict(os.environ)
    env.pop("CRUCIBLE_STORE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXAMPLES), env.get("PYTHONPATH")) if p)
    store = f"sqlite:///{cwd / 'store.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crucible_actors", "serve", "--port", "0", "--store", store, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines, log), daemon=True)
    reader.start()
    try:
        base = None
        while base is None:
            try:
                line = lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail("crucible-actors serve did not start:\n" + "".join(log))
            found = re.search(r"crucible-actors serve: (http://\S+)", line)
            base = found.group(1) if found else None
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server for the examples, shared by this module's tests."""
    with _serving(tmp_path_factory.mktemp("serve")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile and the browser console log enabled."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _console(driver: WebDriver) -> list[dict[str, Any]]:
    """Return (and drain) the browser console entries logged since the last call."""
    # selenium leaves get_log unannotated
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


@pytest.fixture
def page(browser: WebDriver) -> WebDriver:
    """The shared browser, with the console log of earlier tests drained."""
    _console(browser)
    return browser


def _wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, TIMEOUT)


def _severe(driver: WebDriver) -> list[dict[str, Any]]:
    return [e for e in _console(driver) if e.get("level") == "SEVERE"]


def _submit_through_form(driver: WebDriver, base: str, definition: str) -> str:
    """Paste ``definition`` into the submit form, send it, return the new run's id."""
    driver.get(f"{base}/#/submit")
    textarea = _wait(driver).until(ec.element_to_be_clickable((By.ID, "definition")))
    textarea.clear()
    textarea.send_keys(definition)
    driver.find_element(By.ID, "submit-run").click()
    try:
        _wait(driver).until(ec.url_matches(r"#/runs/[^/?]+$"))
    except Exception:
        message = driver.find_element(By.ID, "submit-message").text
        pytest.fail(f"the form did not open the new run; it says: {message!r}")
    return unquote(driver.current_url.rsplit("#/runs/", 1)[1])


def _run_row(driver: WebDriver, run_id: str) -> WebElement | None:
    for row in driver.find_elements(By.CSS_SELECTOR, "#runs tr[data-run-id]"):
        if row.get_attribute("data-run-id") == run_id:
            return row
    return None


def _screenshot(driver: WebDriver, path: Path) -> None:
    """Save the whole page (the window grows to the document's height, up to 5000 px)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(int(height) + 40, 5000)))
    assert driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)


def test_submitted_example_completes_and_run_page_shows_timeline_and_metrics(
    dashboard_server: str, page: WebDriver, tmp_path: Path
) -> None:
    definition = (EXAMPLES / "core_pipeline.toml").read_text(encoding="utf-8")
    stages = [s["name"] for s in tomllib.loads(definition)["pipeline"]]
    run_id = _submit_through_form(page, dashboard_server, definition)

    # The runs page lists the run and follows it (polling) until it has completed.
    page.find_element(By.CSS_SELECTOR, 'nav a[data-nav="runs"]').click()
    _wait(page).until(
        lambda d: (
            (row := _run_row(d, run_id)) is not None
            and row.get_attribute("data-status") == "completed"
        )
    )
    row = _run_row(page, run_id)
    assert row is not None
    assert "core-pipeline" in row.text
    _screenshot(page, tmp_path / "runs-page.png")

    # The run page: one completed bar per stage, the attempts table, the metrics.
    row.find_element(By.CSS_SELECTOR, "a.run-id").click()
    bars = _wait(page).until(
        lambda d: (
            (found := d.find_elements(By.CSS_SELECTOR, "svg.timeline g.attempt"))
            and len(found) == len(stages)
            and found
        )
    )
    assert [b.get_attribute("data-stage") for b in bars] == stages
    assert {b.get_attribute("data-status") for b in bars} == {"completed"}
    metric = _wait(page).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-key="examples_loaded"]'))
    )
    assert metric.find_elements(By.TAG_NAME, "td")[1].text == "3"
    status = page.find_element(By.CSS_SELECTOR, ".run-head .badge")
    assert status.text == "completed"
    # The event log is read from the SSE endpoint with fetch(), through the terminal event.
    _wait(page).until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, '#event-list li[data-type="run_completed"]')
        )
    )
    _wait(page).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#trace-list li[data-type]"))
    )
    _screenshot(page, tmp_path / "run-page.png")

    assert _severe(page) == []


def test_bench_run_page_draws_group_means_with_confidence_intervals(
    dashboard_server: str, page: WebDriver, tmp_path: Path
) -> None:
    pytest.importorskip("scipy", reason=missing_extra("bench"))
    definition = (EXAMPLES / "bench.toml").read_text(encoding="utf-8")
    run_id = _submit_through_form(page, dashboard_server, definition)

    _wait(page).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".run-head .badge"), "completed")
    )
    groups = _wait(page).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "svg.bench-chart g.bench-group")
    )
    assert [g.get_attribute("data-group") for g in groups] == ["baseline", "candidate"]
    for group in groups:
        assert group.find_elements(By.CSS_SELECTOR, "line.whisker")
        assert group.find_elements(By.CSS_SELECTOR, "circle.mean-dot")
    tests = page.find_elements(By.CSS_SELECTOR, "table.bench-tests tbody tr")
    assert [t.find_element(By.TAG_NAME, "td").text for t in tests] == [
        "ttest",
        "mann_whitney",
        "bootstrap",
    ]
    assert run_id in page.find_element(By.TAG_NAME, "h1").text
    _screenshot(page, tmp_path / "bench-run-page.png")

    assert _severe(page) == []


def _fill_definition(driver: WebDriver, base: str, definition: str) -> None:
    driver.get(f"{base}/#/submit")
    textarea = _wait(driver).until(ec.element_to_be_clickable((By.ID, "definition")))
    textarea.clear()
    textarea.send_keys(definition)


def _loader_message(definition: str) -> str:
    """Return the message of the CLI loader's error for ``definition``, as the server says it."""
    with pytest.raises(InvalidExperiment) as caught:
        load_experiment(definition.encode(), format="toml")
    return str(InvalidExperiment(caught.value.errors, source="request"))


MALFORMED = 'id = "broken"\n[[pipeline]\nname = "seed"\n'
MISTYPED = 'id = "mistyped"\n[[pipeline]]\nname = "seed"\nrestart = "sometimes"\n'


def test_the_server_reads_the_definition_and_the_page_shows_its_errors(
    dashboard_server: str, page: WebDriver
) -> None:
    # "Check" shows what the server read: the example, as the CLI loads it.
    definition = (EXAMPLES / "core_pipeline.toml").read_text(encoding="utf-8")
    _fill_definition(page, dashboard_server, definition)
    page.find_element(By.ID, "check-definition").click()
    stages = len(tomllib.loads(definition)["pipeline"])
    _wait(page).until(
        ec.text_to_be_present_in_element(
            (By.ID, "submit-message"),
            f'Parsed as TOML: experiment "core-pipeline" with {stages} stage(s).',
        )
    )
    # A malformed file and a wrong field: the page shows the loader's message, with the
    # line or the field path, and stays on the form.
    for text, where in ((MALFORMED, "line 2"), (MISTYPED, "pipeline[0].restart")):
        expected = _loader_message(text)
        assert where in expected
        _fill_definition(page, dashboard_server, text)
        page.find_element(By.ID, "submit-run").click()
        alert = _wait(page).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "#submit-message .alert"))
        )
        _wait(page).until(ec.text_to_be_present_in_element((By.ID, "submit-message"), expected))
        assert "InvalidExperiment, HTTP 422" in alert.text
        assert page.current_url.endswith("#/submit")
    # The browser logs the two refused requests, and nothing else.
    severe = _severe(page)
    statuses = [re.findall(r"status of (\d+)", e["message"]) for e in severe]
    assert statuses == [["422"], ["422"]], severe


# The tests below use served_app (conftest.py): a server with the service tests' stages.

RESTARTING = """\
id = "restarts"

[[pipeline]]
name = "sleep"
options = { seconds = 30.0 }
timeout = 0.3
restart = "transient"
max_restarts = 2
backoff = 0.05
"""


def test_timeline_shows_timed_out_attempts_and_restarts(
    served_app: str, page: WebDriver, tmp_path: Path
) -> None:
    _submit_through_form(page, served_app, RESTARTING)

    _wait(page).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".run-head .badge"), "failed")
    )
    attempts = _wait(page).until(
        lambda d: (
            (found := d.find_elements(By.CSS_SELECTOR, "svg.timeline g.attempt"))
            and len(found) == 3
            and found
        )
    )
    assert [a.get_attribute("data-attempt") for a in attempts] == ["1", "2", "3"]
    assert {a.get_attribute("data-status") for a in attempts} == {"timeout"}
    # Restarts are marked on the bars of attempts 2 and 3, and the failure is explained.
    assert len(page.find_elements(By.CSS_SELECTOR, "svg.timeline .restart-mark")) == 2
    failure = page.find_element(By.CSS_SELECTOR, "#summary .alert")
    assert "sleep" in failure.text
    _screenshot(page, tmp_path / "restarts-run-page.png")

    assert _severe(page) == []


def test_cancel_button_stops_a_running_run(served_app: str, page: WebDriver) -> None:
    run_id = _submit_through_form(
        page,
        served_app,
        'id = "long"\n[[pipeline]]\nname = "sleep"\noptions = { seconds = 60.0 }\n',
    )
    # The page follows the run live: running, with a growing bar.
    _wait(page).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".run-head .badge"), "running")
    )
    _wait(page).until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, 'svg.timeline g.attempt[data-status="running"]')
        )
    )
    page.find_element(By.ID, "cancel-run").click()
    _wait(page).until(ec.alert_is_present()).accept()

    _wait(page).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".run-head .badge"), "cancelled")
    )
    _wait(page).until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, '#event-list li[data-type="run_cancelled"]')
        )
    )
    assert not page.find_element(By.ID, "cancel-run").is_displayed()
    assert run_id in page.find_element(By.TAG_NAME, "h1").text

    assert _severe(page) == []


def test_dashboard_asks_for_the_token_once_and_keeps_it_for_the_tab(
    tmp_path: Path, page: WebDriver
) -> None:
    (tmp_path / "token").write_text("s3cret-token\n", encoding="utf-8")
    with _serving(tmp_path, "--token-file", str(tmp_path / "token")) as base:
        page.get(f"{base}/#/runs")
        _wait(page).until(ec.visibility_of_element_located((By.ID, "token-dialog")))
        page.find_element(By.ID, "token-input").send_keys("wrong")
        page.find_element(By.CSS_SELECTOR, "#token-dialog button.primary").click()
        _wait(page).until(ec.text_to_be_present_in_element((By.ID, "token-message"), "refused"))
        page.find_element(By.ID, "token-input").send_keys("s3cret-token")
        page.find_element(By.CSS_SELECTOR, "#token-dialog button.primary").click()
        _wait(page).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#runs .empty")))
        assert page.find_element(By.ID, "token-state").is_displayed()
        stored = page.execute_script("return sessionStorage.getItem('crucible-actors.token')")
        assert stored == "s3cret-token"

        # Every later call (submit, detail, the fetch()-read event stream) sends it.
        definition = (EXAMPLES / "core_pipeline.toml").read_text(encoding="utf-8")
        _submit_through_form(page, base, definition)
        _wait(page).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".run-head .badge"), "completed")
        )
        _wait(page).until(
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, '#event-list li[data-type="run_completed"]')
            )
        )
        assert not page.find_element(By.ID, "token-dialog").is_displayed()

        # The browser logs the two refused fetches (401, then 403), and nothing else.
        severe = _severe(page)
        statuses = [re.findall(r"status of (\d+)", e["message"]) for e in severe]
        assert statuses == [["401"], ["403"]], severe
