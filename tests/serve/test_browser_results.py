"""The results dashboard in a real browser: run columns, the sweep page, outputs, provenance.

``examples/sweep.toml`` (2 models x 2 temperatures x 3 repeats, 40 scored examples per
run) is run with the CLI into a fresh SQLite store, then ``crucible-actors serve`` serves
it to headless Chromium (as in ``test_browser.py``, whose helpers and browser fixture
this module shares). Screenshots are decoded (PNG, stdlib only) and checked: a chart
shows its marks in the accent colour, a filled table differs from the empty one.
"""

from __future__ import annotations

import json
import statistics
import struct
import urllib.request
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from tests.helpers import missing_extra

pytest.importorskip("selenium", reason=missing_extra("dev"))

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
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
    from pathlib import Path

    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

#: The dashboard's accent colour in light mode (app.css ``--accent``): chart marks use it.
ACCENT = (0x0B, 0x5C, 0xAD)


class Swept:
    """The served store: base URL, sweep id and its runs (in point order) with their values."""

    def __init__(self, base: str, sweep_id: str, runs: list[dict[str, Any]]) -> None:
        self.base = base
        self.sweep_id = sweep_id
        self.runs = runs


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    cwd = tmp_path_factory.mktemp("results")
    _cli(cwd, "run", str(EXAMPLES / "sweep.toml"))
    import sqlite3

    with sqlite3.connect(cwd / "store.db") as conn:
        (sweep_id,) = conn.execute("SELECT id FROM sweeps").fetchone()
        order = [r for (r,) in conn.execute("SELECT run_id FROM sweep_points ORDER BY position")]
    with _serving(cwd) as base:
        cols = "metrics.accuracy,params.call_model.model,params.call_model.temperature"
        listed = _get_json(f"{base}/api/runs?limit=200&columns={cols}")["runs"]
        by_id = {r["id"]: r for r in listed}
        yield Swept(base, sweep_id, [by_id[r] for r in order])


@pytest.fixture
def tab(browser: WebDriver) -> WebDriver:  # noqa: F811  (the imported fixture)
    """The shared browser, with the console log of earlier tests drained."""
    _console(browser)
    return browser


def _png_pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes): width,
    height and the RGB of every pixel."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos = 8
    idat = b""
    width = height = channels = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert (depth, interlace) == (8, 0), (depth, interlace)
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += data
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    prev = bytearray(stride)
    at = 0
    for _ in range(height):
        kind_byte, line = raw[at], bytearray(raw[at + 1 : at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            corner = prev[i - channels] if i >= channels else 0
            if kind_byte == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind_byte == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind_byte == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind_byte == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    pixels = [(row[i], row[i + 1], row[i + 2]) for row in rows for i in range(0, stride, channels)]
    return width, height, pixels


def _colour_count(pixels: list[tuple[int, int, int]], colour: tuple[int, int, int]) -> int:
    return sum(1 for p in pixels if all(abs(a - b) <= 6 for a, b in zip(p, colour, strict=True)))


def _attr(element: WebElement, name: str) -> str:
    value = element.get_attribute(name)
    assert value is not None, f"no attribute {name!r}"
    return value


def _hash_state(url: str) -> dict[str, list[str]]:
    fragment = urlsplit(url).fragment
    _, _, query = fragment.partition("?")
    return parse_qs(query)


def _column_texts(page: WebDriver, column: str) -> list[str]:
    """The texts of one column's cells, read in one go (the table is re-rendered live)."""
    texts: list[str] = page.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((c) => c.textContent)",
        f'#runs tbody td[data-column="{column}"]',
    )
    return texts


def test_runs_table_shows_chosen_columns_sorted_and_filtered_with_the_state_in_the_url(
    swept: Swept, tab: WebDriver, tmp_path: Path
) -> None:
    page = tab
    page.get(f"{swept.base}/#/runs")
    _wait(page).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#runs tr[data-run-id]")))
    # The picker offers the metrics and the swept parameters the runs have.
    page.find_element(By.CSS_SELECTOR, "#column-picker > summary").click()
    boxes = _wait(page).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#column-picker input[data-column]")
    )
    offered = [b.get_attribute("data-column") for b in boxes]
    assert offered == [
        "metrics.accuracy",
        "params.call_model.model",
        "params.call_model.temperature",
    ]
    for box in boxes[:2]:
        box.click()
    page.find_element(By.ID, "apply-columns").click()
    _wait(page).until(lambda d: "cols=" in d.current_url)
    assert _hash_state(page.current_url)["cols"] == ["metrics.accuracy,params.call_model.model"]
    _wait(page).until(lambda d: len(_column_texts(d, "metrics.accuracy")) == 12)
    headers = [th.text for th in page.find_elements(By.CSS_SELECTOR, "#runs thead th")]
    assert "ACCURACY" in [t.upper() for t in headers]
    table_png = page.find_element(By.CSS_SELECTOR, "#runs table").screenshot_as_png

    # Sort by accuracy: ascending, then descending; the server orders every run.
    def sorted_by_header(direction: str) -> list[float]:
        page.find_element(By.CSS_SELECTOR, 'th[data-column="metrics.accuracy"] a.sort').click()
        _wait(page).until(
            lambda d: (
                d.find_element(By.CSS_SELECTOR, 'th[data-column="metrics.accuracy"]').get_attribute(
                    "aria-sort"
                )
                == direction
            )
        )
        return [float(t) for t in _column_texts(page, "metrics.accuracy")]

    expected = sorted(r["columns"]["metrics.accuracy"] for r in swept.runs)
    assert sorted_by_header("ascending") == pytest.approx(expected, abs=1e-4)
    assert _hash_state(page.current_url)["sort"] == ["metrics.accuracy"]
    assert sorted_by_header("descending") == pytest.approx(expected[::-1], abs=1e-4)
    state = _hash_state(page.current_url)
    assert state["sort"] == ["-metrics.accuracy"]

    # The URL alone restores columns and order (a fresh load, e.g. a shared link).
    url = page.current_url
    page.get("about:blank")
    page.get(url)
    _wait(page).until(lambda d: len(_column_texts(d, "metrics.accuracy")) == 12)
    assert [float(t) for t in _column_texts(page, "metrics.accuracy")] == pytest.approx(
        expected[::-1], abs=1e-4
    )

    # Filter one column: "large" (contains), applied with Enter, kept in the URL.
    box = page.find_element(
        By.CSS_SELECTOR, 'input.col-filter[data-column="params.call_model.model"]'
    )
    box.send_keys("large", Keys.ENTER)
    _wait(page).until(lambda d: len(_column_texts(d, "params.call_model.model")) == 6)
    assert set(_column_texts(page, "params.call_model.model")) == {"large"}
    assert _hash_state(page.current_url)["f"] == ["params.call_model.model~large"]
    assert page.find_element(By.ID, "runs-count").text.startswith("1\N{EN DASH}6 of 6 runs")
    large = sorted(
        (
            r["columns"]["metrics.accuracy"]
            for r in swept.runs
            if r["columns"]["params.call_model.model"] == "large"
        ),
        reverse=True,
    )
    assert [float(t) for t in _column_texts(page, "metrics.accuracy")] == pytest.approx(
        large, abs=1e-4
    )
    # A numeric filter with an operator.
    box = page.find_element(By.CSS_SELECTOR, 'input.col-filter[data-column="metrics.accuracy"]')
    box.send_keys(f">{large[2]}", Keys.ENTER)
    _wait(page).until(lambda d: len(_column_texts(d, "metrics.accuracy")) == 2)
    assert _hash_state(page.current_url)["f"] == [  # in column order
        f"metrics.accuracy>{large[2]}",
        "params.call_model.model~large",
    ]

    # Nothing passes: the empty state keeps the header so the filter can be changed.
    page.get(
        f"{swept.base}/#/runs?cols=metrics.accuracy,params.call_model.model"
        "&f=params.call_model.model~absent"
    )
    _wait(page).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#runs .empty")))
    empty_png = page.find_element(By.CSS_SELECTOR, "#runs table").screenshot_as_png
    _, full_h, full = _png_pixels(table_png)
    _, empty_h, empty = _png_pixels(empty_png)
    assert full_h > 3 * empty_h  # twelve rows against none
    assert len(set(full)) > len(set(empty))  # the status badges, links and values
    assert _colour_count(full, (0x1E, 0x7A, 0x34)) > 100  # green "completed" badges
    assert _colour_count(empty, (0x1E, 0x7A, 0x34)) == 0
    (tmp_path / "runs-columns.png").write_bytes(table_png)
    assert _severe(page) == []


def test_sweep_page_tabulates_points_and_charts_one_mark_per_point(
    swept: Swept, tab: WebDriver, tmp_path: Path
) -> None:
    page = tab
    # A run of the sweep links to its sweep page.
    page.get(f"{swept.base}/#/runs")
    first = swept.runs[0]["id"]
    link = _wait(page).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f'tr[data-run-id="{first}"] a.sweep-link'))
    )
    link.click()
    _wait(page).until(ec.url_contains(f"#/sweeps/{swept.sweep_id}"))
    rows = _wait(page).until(
        lambda d: (found := d.find_elements(By.CSS_SELECTOR, "#sweep-table tbody tr")) and found
    )
    assert len(rows) == 4
    # Each point: its parameters, and accuracy as mean ± SD (n) over its three repeats.
    means = {}
    for index, row in enumerate(rows):
        repeats = swept.runs[3 * index : 3 * index + 3]
        cells = repeats[0]["columns"]
        params = [td.text for td in row.find_elements(By.CSS_SELECTOR, "td[data-param]")]
        assert params == [
            cells["params.call_model.model"],
            f"{cells['params.call_model.temperature']:g}",
        ]
        values = [r["columns"]["metrics.accuracy"] for r in repeats]
        shown = row.find_element(By.CSS_SELECTOR, 'td[data-metric="accuracy"]').text
        mean_text, _, rest = shown.partition(" ± ")
        sd_text, _, n_text = rest.partition(" ")
        assert float(mean_text) == pytest.approx(statistics.mean(values), rel=1e-4)
        assert float(sd_text) == pytest.approx(statistics.stdev(values), rel=1e-4)
        assert n_text == "(n=3)"
        means[index] = statistics.mean(values)
        run_links = row.find_elements(By.CSS_SELECTOR, "a.repeat-link")
        assert [unquote(_attr(a, "href").rsplit("#/runs/", 1)[1]) for a in run_links] == [
            r["id"] for r in repeats
        ]

    # One chart per swept parameter, one mark per point; a higher mean is drawn higher.
    charts = page.find_elements(By.CSS_SELECTOR, "svg.sweep-chart")
    assert [(c.get_attribute("data-param"), c.get_attribute("data-kind")) for c in charts] == [
        ("call_model.model", "categorical"),
        ("call_model.temperature", "numeric"),
    ]
    for chart in charts:
        marks = chart.find_elements(By.CSS_SELECTOR, "g.sweep-point")
        assert sorted(int(_attr(m, "data-point")) for m in marks) == [0, 1, 2, 3]
        assert len(chart.find_elements(By.CSS_SELECTOR, "circle.point-mark")) == 4
        heights = {
            int(_attr(m, "data-point")): float(
                _attr(m.find_element(By.CSS_SELECTOR, "circle.point-mark"), "cy")
            )
            for m in marks
        }
        by_mean = sorted(means, key=means.__getitem__)
        assert sorted(heights, key=heights.__getitem__, reverse=True) == by_mean
        png = chart.screenshot_as_png
        width, height, pixels = _png_pixels(png)
        assert width > 300
        assert height > 150
        # The four marks (radius 5.5) are painted in the accent colour.
        assert _colour_count(pixels, ACCENT) > 4 * 40
    # Temperature is numeric: 0.0 left of 0.7 for the same model.
    temp = charts[1]
    x = {
        int(_attr(m, "data-point")): float(
            _attr(m.find_element(By.CSS_SELECTOR, "circle.point-mark"), "cx")
        )
        for m in temp.find_elements(By.CSS_SELECTOR, "g.sweep-point")
    }
    assert x[0] < x[1]
    assert x[2] < x[3]
    (tmp_path / "sweep-chart.png").write_bytes(charts[0].screenshot_as_png)

    compare = page.find_element(By.ID, "sweep-compare")
    assert _attr(compare, "href").endswith(f"#/compare?sweep={swept.sweep_id}")
    compare.click()
    _wait(page).until(ec.presence_of_element_located((By.ID, "compare-frame")))
    # Unknown sweeps say so.
    page.get(f"{swept.base}/#/sweeps/nope")
    _wait(page).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Sweep not found"))
    severe = [e for e in _severe(page) if "status of 404" not in e["message"]]
    assert severe == []


def test_outputs_are_a_paged_searchable_table(swept: Swept, tab: WebDriver) -> None:
    page = tab
    run_id = swept.runs[0]["id"]
    page.get(f"{swept.base}/#/runs/{run_id}")

    def indexes() -> list[str]:
        found: list[str] = page.execute_script(
            "return [...document.querySelectorAll('#outputs-table tbody tr')]"
            ".map((r) => r.dataset.index)"
        )
        return found

    _wait(page).until(lambda d: len(indexes()) == 25)
    assert indexes() == [str(i) for i in range(25)]
    sweep_link = page.find_element(By.ID, "run-sweep-link")
    assert _attr(sweep_link, "href").endswith(f"#/sweeps/{swept.sweep_id}")
    headers = [
        th.text.lower()
        for th in page.find_elements(By.CSS_SELECTOR, "#outputs-table th[scope=col]")
    ]
    assert headers == ["#", "id", "score"]
    assert (
        page.find_element(By.ID, "outputs-status").text == "Showing 1\N{EN DASH}25 of 40 outputs."
    )
    assert not page.find_element(By.ID, "outputs-prev").is_enabled()
    page.find_element(By.ID, "outputs-next").click()
    _wait(page).until(lambda d: indexes() == [str(i) for i in range(25, 40)])
    assert not page.find_element(By.ID, "outputs-next").is_enabled()
    # Search (server-side, back to the first page): q30..q39.
    search = page.find_element(By.ID, "outputs-search")
    search.send_keys("q3", Keys.ENTER)
    _wait(page).until(lambda d: indexes() == [str(i) for i in range(30, 40)])
    first_id = page.find_element(By.CSS_SELECTOR, "#outputs-table tbody tr td").text
    assert first_id == "q30"
    assert (
        "1\N{EN DASH}10 of 10 outputs containing “q3” (40 in all)"
        in page.find_element(By.ID, "outputs-status").text
    )
    search.clear()
    search.send_keys("nothing-like-this", Keys.ENTER)
    _wait(page).until(
        ec.text_to_be_present_in_element((By.ID, "outputs-table"), "No output contains")
    )
    # No per-output collapsible entries any more.
    assert page.find_elements(By.CSS_SELECTOR, "#definition details") != []
    assert not [s for s in page.find_elements(By.TAG_NAME, "summary") if "Output:" in s.text]
    assert _severe(page) == []


PROVENANCE = {
    "environment": "5f0c2d9e8b7a6f5e4d3c2b1a09f8e7d6",
    "python": "3.12.7",
    "crucible_actors": "0.9.0",
    "platform": "Linux-6.1-x86_64",
    "host": "lab-box",
    "packages": {"numpy": "2.1.0", "scikit-learn": "1.5.2"},
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
    "stages": {"questions": "fp-questions-1", "call_model": "fp-call-model-2"},
    "inputs": {"assigns.examples": "xxh3:feedbeef"},
}

# Rewrites GET /api/runs/{id} answers in the page: each run named in the mapping gets that
# provenance, or loses its provenance key for null, so every rendering is exercised whatever
# the server records (the API side of provenance is tested with the store).
_FETCH_PATCH = """
(() => {
  const patches = %s;
  const original = window.fetch;
  window.fetch = async (input, init) => {
    const resp = await original(input, init);
    const url = String(typeof input === "string" ? input : input.url);
    const match = url.match(/api\\/runs\\/([^/?]+)$/);
    if (!match || !resp.ok) return resp;
    const id = decodeURIComponent(match[1]);
    if (!(id in patches)) return resp;
    const body = await resp.json();
    if (patches[id] === null) delete body.provenance;
    else body.provenance = patches[id];
    const headers = {"Content-Type": "application/json"};
    return new Response(JSON.stringify(body), {status: 200, headers});
  };
})();
"""


def test_provenance_section_shows_what_produced_the_run_and_nothing_without_it(
    swept: Swept, tab: WebDriver, tmp_path: Path
) -> None:
    page = tab
    with_id, without_id, partial_id = (r["id"] for r in swept.runs[:3])
    # What a run stored outside a git work tree, whose environment record is gone, has.
    partial = {
        **PROVENANCE,
        "environment": None,
        "python": None,
        "packages": {},
        "git": None,
        "inputs": {},
    }
    patches = {with_id: PROVENANCE, without_id: None, partial_id: partial}
    script = _FETCH_PATCH % json.dumps(patches)
    added = page.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    try:
        page.get("about:blank")  # a new document, so the patch is in place before app.js
        page.get(f"{swept.base}/#/runs/{with_id}")
        section = _wait(page).until(ec.visibility_of_element_located((By.ID, "provenance")))
        facts = {
            dt.text: dd.text
            for dt, dd in zip(
                section.find_elements(By.CSS_SELECTOR, "dl.facts dt"),
                section.find_elements(By.CSS_SELECTOR, "dl.facts dd"),
                strict=True,
            )
        }
        assert facts["Python"] == "3.12.7"
        assert facts["crucible-actors"] == "0.9.0"
        assert facts["Platform"] == "Linux-6.1-x86_64"
        assert facts["Host"] == "lab-box"
        assert facts["Environment"] == "5f0c2d9e8b7a"
        assert facts["Git commit"].startswith("0123456789ab")
        assert section.find_element(By.ID, "git-dirty").text == "dirty"
        stages = {
            r.get_attribute("data-key"): r.find_elements(By.TAG_NAME, "td")[1].text
            for r in section.find_elements(By.CSS_SELECTOR, "table.prov-stages tbody tr")
        }
        assert stages == PROVENANCE["stages"]
        inputs = section.find_elements(By.CSS_SELECTOR, "table.prov-inputs tbody tr")
        assert [r.get_attribute("data-key") for r in inputs] == ["assigns.examples"]
        packages = section.find_element(By.ID, "prov-packages")
        assert packages.find_element(By.TAG_NAME, "summary").text == "Packages (2)"
        packages.find_element(By.TAG_NAME, "summary").click()
        rows = packages.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.text.split() for r in rows] == [["numpy", "2.1.0"], ["scikit-learn", "1.5.2"]]
        _, height, pixels = _png_pixels(section.screenshot_as_png)
        assert height > 200
        assert _colour_count(pixels, (0xB4, 0x23, 0x18)) > 50  # the red "dirty" badge
        (tmp_path / "provenance.png").write_bytes(section.screenshot_as_png)

        page.get(f"{swept.base}/#/runs/{without_id}")
        _wait(page).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".run-head .badge"), "completed")
        )
        _wait(page).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#outputs-table tbody tr")) == 25
        )
        section = page.find_element(By.ID, "provenance")
        assert not section.is_displayed()
        assert section.find_elements(By.CSS_SELECTOR, "*") == []

        page.get(f"{swept.base}/#/runs/{partial_id}")
        section = _wait(page).until(ec.visibility_of_element_located((By.ID, "provenance")))
        facts = {
            dt.text: dd.text
            for dt, dd in zip(
                section.find_elements(By.CSS_SELECTOR, "dl.facts dt"),
                section.find_elements(By.CSS_SELECTOR, "dl.facts dd"),
                strict=True,
            )
        }
        assert (facts["Python"], facts["Environment"]) == ("—", "—")
        assert facts["Git commit"] == "not in a git work tree"
        assert section.find_elements(By.ID, "git-dirty") == []
        assert "No large inputs recorded." in section.text
        assert "Packages (0)" in section.text
    finally:
        page.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
        )
    assert _severe(page) == []
