"""The dashboard's compare view in a real browser: tick runs, compare, read the page.

A sweep of ``examples/sweep.toml`` is run with the CLI into a fresh SQLite store, then
``crucible-actors serve`` (as in ``test_browser.py``) serves that store to headless
Chromium. Skips like ``test_browser.py`` when chromium or chromedriver is missing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from tests.helpers import missing_extra

pytest.importorskip("selenium", reason=missing_extra("dev"))

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from tests.serve.test_browser import (
    EXAMPLES,
    _cli,
    _console,
    _serving,
    _severe,
    _wait,
    browser,  # noqa: F401  (the fixture, shared with that module's)
    pytestmark,  # noqa: F401  (slow; skipped without chromium)
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from selenium.webdriver.chrome.webdriver import WebDriver


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str], str]]:
    """(server URL, the sweep's run ids in point order, the sweep id)."""
    cwd = tmp_path_factory.mktemp("compare")
    _cli(cwd, "run", str(EXAMPLES / "sweep.toml"))
    sweeps = json.loads(_cli(cwd, "runs", "list", "--json"))["runs"]
    assert len(sweeps) == 12
    import sqlite3

    with sqlite3.connect(cwd / "store.db") as conn:
        (sweep_id,) = conn.execute("SELECT id FROM sweeps").fetchone()
    listed = json.loads(_cli(cwd, "runs", "list", "--sweep", sweep_id, "--json"))
    run_ids = [r["run_id"] for r in listed["runs"]]
    with _serving(cwd) as base:
        yield base, run_ids, sweep_id


@pytest.fixture
def tab(browser: WebDriver) -> WebDriver:  # noqa: F811  (the imported fixture)
    """The shared browser, with the console log of earlier tests drained."""
    _console(browser)
    return browser


def _frame_text(driver: WebDriver) -> tuple[str, int, int]:
    frame = _wait(driver).until(ec.presence_of_element_located((By.ID, "compare-frame")))
    driver.switch_to.frame(frame)
    try:
        verdict = _wait(driver).until(ec.presence_of_element_located((By.ID, "verdict"))).text
        dots = len(driver.find_elements(By.CSS_SELECTOR, "svg.distributions circle.dot"))
        pairs = len(driver.find_elements(By.CSS_SELECTOR, "svg.paired circle.pair"))
    finally:
        driver.switch_to.default_content()
    return verdict, dots, pairs


def test_ticked_runs_are_compared_on_the_same_page_as_the_cli(
    swept: tuple[str, list[str], str], tab: WebDriver
) -> None:
    page = tab
    base, run_ids, _ = swept
    small, large = run_ids[0], run_ids[6]  # model=small t=0.0 and model=large t=0.0
    page.get(f"{base}/#/runs")
    button = _wait(page).until(ec.presence_of_element_located((By.ID, "compare-selected")))
    assert not button.is_enabled()
    for run_id in (small, large):
        box = _wait(page).until(
            ec.element_to_be_clickable(
                (By.CSS_SELECTOR, f'tr[data-run-id="{run_id}"] input.select-run')
            )
        )
        box.click()
    assert button.text == "Compare selected (2)"
    button.click()
    _wait(page).until(ec.url_contains("#/compare?runs="))
    assert page.find_element(By.TAG_NAME, "h1").text == "Compare 2 runs"
    verdict, dots, pairs = _frame_text(page)
    assert f"{large[:8]} vs {small[:8]}: mean" in verdict
    assert verdict.endswith(f"{large[:8]} is better than {small[:8]}.")
    # Every output has a unique id: paired automatically, per-example differences drawn.
    assert "by the paired t-test" in verdict
    assert (dots, pairs) == (80, 40)

    # Opt out of pairing: the page re-fetches, unpaired.
    page.find_element(By.ID, "compare-unpaired").click()
    page.find_element(By.ID, "compare-run").click()
    _wait(page).until(ec.url_contains("unpaired=1"))
    verdict, dots, pairs = _frame_text(page)
    assert "by Welch's t-test" in verdict
    assert (dots, pairs) == (80, 0)  # 40 scores per run, unpaired
    assert _severe(page) == []


def test_sweep_compare_ranks_points_and_errors_show_in_the_page(
    swept: tuple[str, list[str], str], tab: WebDriver
) -> None:
    page = tab
    base, _, sweep_id = swept
    page.get(f"{base}/#/compare?sweep={sweep_id}&pair_by=id")
    verdict, dots, pairs = _frame_text(page)
    assert verdict.startswith("Best: model=large temperature=0.0 (mean ")
    assert (dots, pairs) == (4 * 40, 3 * 40)
    page.get(f"{base}/#/compare?runs=nope-a,nope-b")
    alert = _wait(page).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#compare-result .alert"))
    )
    assert "no run with id 'nope-a'" in alert.text
