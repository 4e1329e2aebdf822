"""The rendering kit: one page shell and stylesheet, and the escaping every output shares."""

from __future__ import annotations

import math
import re

import pytest

from crucible_actors import Context, Experiment, StageDef
from crucible_actors import trace as tr
from crucible_actors._render_kit import (
    CSS,
    cards,
    escape,
    html_table,
    md_cell,
    md_table,
    number,
    page,
)
from crucible_actors.stages._render import render_html


def test_page_is_self_contained_and_escapes_its_title() -> None:
    html = page("<A & B>", "<p>body</p>")
    assert html.startswith("<!DOCTYPE html>\n")
    assert "<title>&lt;A &amp; B&gt;</title>" in html
    assert f"<style>{CSS}</style>" in html
    assert "<main>\n<p>body</p>\n</main>" in html
    assert not re.search(r"(?:src|href)\s*=|<script|<link|@import|url\(", html)


def test_the_report_and_the_trace_pages_share_the_shell_and_the_stylesheet() -> None:
    ctx = tr.init_trace(Context.new(Experiment(id="e", pipeline=[StageDef(name="s")])), "t")
    ctx = tr.emit_decision(ctx, "d", "r", [], 0.9)
    for html in (render_html(ctx), tr.export_html(ctx) or ""):
        assert html.count("<style>") == 1
        assert f"<style>{CSS}</style>" in html


def test_escape_quotes_and_treats_none_as_empty() -> None:
    assert escape('<a href="x">\'</a>') == "&lt;a href=&quot;x&quot;&gt;&#x27;&lt;/a&gt;"
    assert escape(None) == ""
    assert escape(3) == "3"


def test_html_table_and_cards_escape_every_cell() -> None:
    table = html_table(["<h>"], [["<c>"]], cls="x")
    assert table == (
        '<table class="x"><thead><tr><th>&lt;h&gt;</th></tr></thead>'
        "<tbody><tr><td>&lt;c&gt;</td></tr></tbody></table>"
    )
    assert "<table>" in html_table(["h"], [])
    assert cards([("<k>", "<v>")]) == (
        '<div class="cards"><div class="card"><div class="label">&lt;k&gt;</div>'
        '<div class="value">&lt;v&gt;</div></div></div>'
    )


def test_markdown_cells_cannot_break_the_table() -> None:
    assert md_cell("a | b\\c\r\nd") == "a \\| b\\\\c  d"
    assert md_cell(None) == ""
    assert md_table(["x|y", "z"], [["1", None]]) == ["| x\\|y | z |", "|---|---|", "| 1 |  |"]


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (None, 4, "-"),
        (True, 4, "true"),
        (0.123456, 4, "0.1235"),
        (0.123456, 2, "0.12"),
        (123456, 4, "123456"),
        (math.nan, 4, "NaN"),
        (-math.inf, 4, "-inf"),
        ("x", 4, "x"),
    ],
)
def test_number_is_short_and_spells_the_odd_values(value: object, digits: int, text: str) -> None:
    assert number(value, digits) == text
