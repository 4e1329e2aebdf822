"""Tests for the ``report`` stage and its renderers."""

from __future__ import annotations

import csv
import enum
import io
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import registry_with

import crucible_actors
from crucible_actors import Context, Experiment, OutputSpec, StageDef, stage
from crucible_actors.stages import ReportStage
from crucible_actors.stages._render import render_csv, render_html, render_json, render_markdown
from crucible_actors.stages.report import ReportOptions

if TYPE_CHECKING:
    from pathlib import Path

BASE_STATS = {"n": 5, "mean": 0.704, "std": 0.0114, "confidence_interval": [0.69, 0.718]}
BENCH: dict[str, Any] = {
    "tests_run": ["ttest"],
    "alpha": 0.05,
    "correction": "none",
    "results": {
        "groups": ["base", "cand"],
        "sample_sizes": {"base": 5, "cand": 5},
        "test_results": {
            "ttest": {
                "test": "ttest",
                "statistic": 11.01,
                "p_value": 0.0000085,
                "significant": True,
                "confidence_interval": [0.07, 0.12],
                "effect_size": {},
                "interpretation": "Extremely significant (p < 0.001)",
            }
        },
        "effect_size": {"cohens_d": 6.96, "hedges_g": 6.29, "interpretation": "large"},
        "alpha": 0.05,
        "correction": "none",
    },
    "group_stats": {
        "base": BASE_STATS,
        "cand": {"n": 5, "mean": 0.8, "std": 0.0158, "confidence_interval": [0.78, 0.82]},
    },
    "timestamp": "2025-03-01T12:00:00+00:00",
}


class Color(enum.Enum):
    RED = "red"


def _ctx(outputs: list[OutputSpec], *, metrics: dict[str, Any] | None = None) -> Context:
    exp = Experiment(
        id="exp",
        name="Report demo",
        description="Checks the report stage",
        pipeline=[StageDef(name="load"), StageDef(name="bench"), StageDef(name="report")],
        outputs=outputs,
    )
    ctx = Context.new(exp, run_id="run1")
    ctx = ctx.mark_stage_complete("load").mark_stage_complete("bench")
    return ctx.merge_metrics(
        metrics
        if metrics is not None
        else {"accuracy": 0.91, "data_checks": {"total": 3, "missing_required": 1}, "bench": BENCH}
    )


def _report(ctx: Context, **opts: Any) -> Context:
    return ReportStage().run(ctx, ReportOptions(**opts))


ALL = ["markdown", "json", "html", "csv"]


# --- files --------------------------------------------------------------------------------


def test_each_format_gets_its_own_file(tmp_path: Path) -> None:
    ctx = _report(_ctx([OutputSpec(name="summary", formats=ALL)]), output_dir=str(tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "exp-run1-summary.csv",
        "exp-run1-summary.html",
        "exp-run1-summary.json",
        "exp-run1-summary.md",
    ]
    assert (tmp_path / "exp-run1-summary.md").read_text().startswith("# Experiment Report demo\n")
    assert json.loads((tmp_path / "exp-run1-summary.json").read_text())["run_id"] == "run1"
    assert (tmp_path / "exp-run1-summary.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "exp-run1-summary.csv").read_text().startswith("metric,value\n")
    assert len(ctx.outputs) == 1


def test_written_files_are_recorded_as_artifacts_and_outputs(tmp_path: Path) -> None:
    ctx = _report(
        _ctx([OutputSpec(name="summary", formats=["markdown", "json"])]), output_dir=str(tmp_path)
    )
    md, js = str(tmp_path / "exp-run1-summary.md"), str(tmp_path / "exp-run1-summary.json")
    assert ctx.artifacts == {
        "summary.markdown": {
            "name": "summary",
            "type": "report",
            "location": md,
            "format": "markdown",
        },
        "summary.json": {"name": "summary", "type": "report", "location": js, "format": "json"},
    }
    assert ctx.outputs == [
        {
            "name": "summary",
            "rendered": [{"format": "markdown", "path": md}, {"format": "json", "path": js}],
        }
    ]


def test_spec_dir_wins_over_output_dir_and_default_is_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    specs = [
        OutputSpec(name="here", formats=["json"], options={"dir": str(tmp_path / "spec-dir")}),
        OutputSpec(name="there", formats=["json"]),
    ]
    _report(_ctx(specs), output_dir=str(tmp_path / "stage-dir"))
    assert (tmp_path / "spec-dir" / "exp-run1-here.json").is_file()
    assert (tmp_path / "stage-dir" / "exp-run1-there.json").is_file()
    _report(_ctx([OutputSpec(name="default", formats=["csv"])]))
    assert (tmp_path / "reports" / "exp-run1-default.csv").is_file()


def test_names_cannot_escape_the_report_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ctx = _report(_ctx([OutputSpec(name="../../evil/x", formats=["json"])]), output_dir=str(out))
    assert [p.name for p in out.iterdir()] == ["exp-run1-.._.._evil_x.json"]
    assert ctx.artifacts["../../evil/x.json"]["location"] == str(out / "exp-run1-.._.._evil_x.json")


def test_unknown_format_or_sink_fails_before_anything_is_written(tmp_path: Path) -> None:
    specs = [OutputSpec(name="ok", formats=["json"]), OutputSpec(name="bad", formats=["pdf"])]
    with pytest.raises(ValueError, match=r"^output 'bad'") as info:
        _report(_ctx(specs), output_dir=str(tmp_path))
    assert str(info.value) == (
        "output 'bad': unknown format(s) 'pdf'; expected any of: markdown, json, html, csv"
    )
    with pytest.raises(ValueError, match=r"^output 's'") as info:
        _report(_ctx([OutputSpec(name="s", sink="email")]), output_dir=str(tmp_path))
    assert str(info.value) == "output 's': unknown sink 'email'; expected one of: file, stdout"
    assert list(tmp_path.iterdir()) == []


def test_two_outputs_writing_the_same_file_are_refused(tmp_path: Path) -> None:
    specs = [OutputSpec(name="s", formats=["json"]), OutputSpec(name="s", formats=["json", "csv"])]
    with pytest.raises(ValueError, match=r"^outputs 's' and 's'") as info:
        _report(_ctx(specs), output_dir=str(tmp_path))
    assert str(info.value) == (
        f"outputs 's' and 's' would both write {tmp_path / 'exp-run1-s.json'}; "
        "give each OutputSpec a distinct name"
    )
    assert list(tmp_path.iterdir()) == []


def test_repeated_formats_are_written_once(tmp_path: Path) -> None:
    ctx = _report(_ctx([OutputSpec(name="s", formats=["json", "json"])]), output_dir=str(tmp_path))
    assert [r["format"] for r in ctx.outputs[0]["rendered"]] == ["json"]


# --- stdout -------------------------------------------------------------------------------


def test_stdout_sink_prints_each_format_and_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = _report(_ctx([OutputSpec(name="console", formats=["markdown", "csv"], sink="stdout")]))
    printed = capsys.readouterr().out
    markdown, table = render_markdown(_ctx([])), render_csv(_ctx([]))
    assert printed == f"== console (markdown) ==\n{markdown}== console (csv) ==\n{table}"
    assert ctx.outputs[0]["rendered"][0]["format"] == "markdown"
    assert ctx.outputs[0]["rendered"][0]["body"].startswith("# Experiment Report demo")
    assert ctx.artifacts == {}
    assert list(tmp_path.iterdir()) == []


# --- markdown -----------------------------------------------------------------------------


def test_markdown_uses_tables_not_json_dumps() -> None:
    text = render_markdown(_ctx([]))
    assert "```" not in text
    assert "Checks the report stage" in text
    for line in [
        "| Experiment | exp |",
        "| Run | run1 |",
        "| Stages completed | 2 of 3 |",
        "| # | Stage | Status |",
        "| 1 | load | completed |",
        "| 3 | report | pending |",
        "| Metric | Value |",
        "| accuracy | 0.91 |",
        "| data_checks.total | 3 |",
        "## Bench results",
        "| Group | n | Mean | Std | Confidence interval |",
        "| base | 5 | 0.704 | 0.0114 | [0.69, 0.718] |",
        "| Test | Statistic | p-value | Adjusted p | Significant | Interpretation |",
        "| ttest | 11.01 | 8.5e-06 | - | yes | Extremely significant (p < 0.001) |",
        "| cohens_d | 6.96 |",
    ]:
        assert line in text.splitlines(), line


def test_markdown_escapes_table_breaking_characters() -> None:
    text = render_markdown(_ctx([], metrics={"note": "a | b\nc"}))
    assert "| note | a \\| b c |" in text.splitlines()


# --- json ---------------------------------------------------------------------------------


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


def test_json_survives_tuples_and_odd_values() -> None:
    metrics = {
        "pair": (1, 2),
        "nested": {"t": ((1, "a"), {3})},
        "obj": Opaque(),
        "when": datetime(2025, 1, 1, tzinfo=UTC),
        "color": Color.RED,
        "nan": float("nan"),
        "by_pair": {(1, 2): "x"},
        "blob": b"hi",
    }
    data = json.loads(render_json(_ctx([], metrics=metrics)))
    assert data["metrics"] == {
        "pair": [1, 2],
        "nested": {"t": [[1, "a"], [3]]},
        "obj": "<Opaque>",
        "when": "2025-01-01T00:00:00Z",
        "color": "red",
        "nan": None,
        "by_pair": {"(1, 2)": "x"},
        "blob": "aGk=",
    }
    assert data["experiment_id"] == "exp"
    assert [s["status"] for s in data["stages"]] == ["completed", "completed", "pending"]


def test_json_report_file_survives_odd_values(tmp_path: Path) -> None:
    ctx = _ctx([OutputSpec(name="s", formats=["json"])], metrics={"t": (1, Opaque())})
    _report(ctx, output_dir=str(tmp_path))
    data = json.loads((tmp_path / "exp-run1-s.json").read_text())
    assert data["metrics"] == {"t": [1, "<Opaque>"]}


# --- html ---------------------------------------------------------------------------------


def test_html_is_self_contained() -> None:
    page = render_html(_ctx([]))
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?https?:", page)
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert "<link" not in page


def test_html_escapes_every_value() -> None:
    ctx = _ctx(
        [],
        metrics={
            "<script>alert('k')</script>": "<script>alert(1)</script>",
            "bench": {**BENCH, "group_stats": {"<b>x</b>": BASE_STATS}},
        },
    )
    page = render_html(ctx)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#x27;k&#x27;)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_html_has_summary_timeline_metrics_and_a_plot_of_the_groups() -> None:
    page = render_html(_ctx([]))
    assert "<title>Report demo - Report</title>" in page
    assert "Stage timeline" in page
    assert '<span class="badge completed">completed</span>' in page
    assert "<td>accuracy</td><td>0.91</td>" in page
    svg = re.search(r"<svg .*?</svg>", page, re.S)
    assert svg is not None
    assert svg.group().count('<circle class="mean"') == 2
    assert svg.group().count('<line class="ci"') == 6
    assert "base: mean 0.704, CI [0.69, 0.718]" in svg.group()


def test_html_without_bench_has_no_plot() -> None:
    page = render_html(_ctx([], metrics={"accuracy": 0.5}))
    assert "<svg" not in page
    assert "Bench results" not in page


# --- csv ----------------------------------------------------------------------------------


def test_csv_flattens_nested_metrics_with_dots() -> None:
    ctx = _ctx([], metrics={"accuracy": 0.5, "dc": {"total": 3, "ok": True}, "runs": [1, None]})
    rows = list(csv.reader(io.StringIO(render_csv(ctx))))
    assert rows == [
        ["metric", "value"],
        ["accuracy", "0.5"],
        ["dc.total", "3"],
        ["dc.ok", "true"],
        ["runs.0", "1"],
        ["runs.1", ""],
    ]


def test_csv_includes_bench_results() -> None:
    rows = dict(list(csv.reader(io.StringIO(render_csv(_ctx([])))))[1:])
    assert rows["bench.results.test_results.ttest.p_value"] == "8.5e-06"
    assert rows["bench.group_stats.cand.mean"] == "0.8"


# --- in a run -----------------------------------------------------------------------------


@stage("load")
def load(ctx: Context, opts: Any) -> Context:
    return ctx.put_metric("accuracy", 0.91).put_metric("pairs", (1, 2))


async def test_report_in_a_run_counts_its_own_stage_as_completed(tmp_path: Path) -> None:
    registry = registry_with(ReportStage, load)
    exp = Experiment(
        id="exp",
        pipeline=[
            StageDef(name="load"),
            StageDef(name="skipped", enabled=False),
            StageDef(name="report", options={"output_dir": str(tmp_path)}),
        ],
        outputs=[OutputSpec(name="summary", formats=ALL)],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry, run_id="r9", enable_trace=True)
    assert sorted(ctx.artifacts) == [
        "summary.csv",
        "summary.html",
        "summary.json",
        "summary.markdown",
    ]
    data = json.loads((tmp_path / "exp-r9-summary.json").read_text())
    assert [(s["stage"], s["status"], s["this_stage"]) for s in data["stages"]] == [
        ("load", "completed", False),
        ("skipped", "skipped", False),
        ("report", "completed", True),
    ]
    assert isinstance(data["stages"][0]["duration"], float)
    assert data["metrics"] == {"accuracy": 0.91, "pairs": [1, 2]}
    assert ctx.completed_stages() == ["load", "report"]
    markdown = (tmp_path / "exp-r9-summary.md").read_text().splitlines()
    assert "| Stages completed | 2 of 3 (1 skipped) |" in markdown
    assert any(line.startswith("| 3 | report | completed (this stage) |") for line in markdown)
    page = (tmp_path / "exp-r9-summary.html").read_text()
    assert '<span class="badge completed">completed (this stage)</span>' in page
    assert "running" not in page


async def test_report_as_the_last_of_five_stages_says_five_of_five(
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = registry_with(ReportStage)
    for name in ("a", "b", "c", "d"):
        registry.register(stage(name)(lambda ctx, opts: ctx))
    exp = Experiment(
        id="five",
        pipeline=[*(StageDef(name=n) for n in "abcd"), StageDef(name="report")],
        outputs=[OutputSpec(name="summary", formats=["markdown"], sink="stdout")],
    )
    await crucible_actors.run_async(exp, registry=registry, run_id="r5")
    lines = capsys.readouterr().out.splitlines()
    assert "| Stages completed | 5 of 5 |" in lines
    assert "| 5 | report | completed (this stage) |" in lines
    assert [line for line in lines if "running" in line or "pending" in line] == []


def test_report_outside_a_run_lists_later_stages_as_pending() -> None:
    rows = render_markdown(_ctx([])).splitlines()
    assert "| 3 | report | pending |" in rows
    assert "| Stages completed | 2 of 3 |" in rows


def test_reports_without_metrics_say_so() -> None:
    ctx = _ctx([], metrics={})
    assert "No metrics recorded." in render_markdown(ctx)
    assert "<p>No metrics recorded.</p>" in render_html(ctx)
    assert render_csv(ctx) == "metric,value\n"


def test_bench_without_data_is_reported_as_such() -> None:
    bench = {"tests_run": ["ttest"], "alpha": 0.05, "results": {"no_data": True}}
    ctx = _ctx([], metrics={"bench": bench})
    assert "No data available for analysis." in render_markdown(ctx).splitlines()
    assert "<p>No data available for analysis.</p>" in render_html(ctx)
