"""The CLI's two faces: rich on a terminal, plain lines in a pipe; both through ``cli.main``.

The terminal path records into ``rich.console.Console(record=True, force_terminal=True)``
put in place of :data:`crucible_actors.cli._console.make_console`; the plain path is what
pytest's captured stdout (not a terminal) gets.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest
from rich.console import Console

from crucible_actors import RunEvent
from crucible_actors._core._ir import Experiment, StageDef
from crucible_actors.cli import _console, main
from crucible_actors.cli._progress import PlainProgress, RunProgress, render_progress

if TYPE_CHECKING:
    from pathlib import Path

STAGES_PY = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import anyio
    import crucible_actors as ca
    from crucible_actors.cli import _console


    @ca.stage("seed", description="Seed the examples")
    def seed(ctx, opts):
        return ctx.put_metric("n", 1)


    @ca.stage("flaky")
    def flaky(ctx, opts):
        marker = Path("flaky-tried")
        if not marker.exists():
            marker.write_text("once")
            raise ConnectionError("[bold]first try[/bold] fails")
        return ctx.put_metric("flaky", "ok")


    @ca.stage("explode")
    def explode(ctx, opts):
        raise RuntimeError("kaboom")


    @ca.stage("watch_plain")
    async def watch_plain(ctx, opts):
        # The progress line of this very stage is on stdout while the stage still runs.
        for _ in range(1000):
            if "watch_plain: started" in sys.stdout.getvalue():
                return ctx.put_metric("saw_progress", True)
            await anyio.sleep(0)
        return ctx.put_metric("saw_progress", False)


    @ca.stage("watch_live")
    async def watch_live(ctx, opts):
        # The live table shows this very stage as running while it runs.
        console = _console.make_console()
        for _ in range(1000):
            lines = console.export_text(clear=False).splitlines()
            if any("watch_live" in line and "running" in line for line in lines):
                return ctx.put_metric("saw_progress", True)
            await anyio.sleep(0)
        return ctx.put_metric("saw_progress", False)


    @ca.stage(
        "tune",
        description="A stage described by a dict schema",
        schema={
            "name": "tune",
            "description": "A stage described by a dict schema",
            "required": ["model"],
            "optional": ["mode", "steps"],
            "types": {
                "model": "string",
                "mode": ("enum", ["fast", "exact"]),
                "steps": "integer",
            },
            "defaults": {"mode": "fast", "steps": 10},
            "option_descriptions": {"model": "which model to tune", "mode": "[red]speed[/red]"},
        },
    )
    def tune(ctx, opts):
        return ctx
    """
)

TOML = """
[stages]
seed = "richcli_stages:seed"
flaky = "richcli_stages:flaky"
explode = "richcli_stages:explode"
watch_plain = "richcli_stages:watch_plain"
watch_live = "richcli_stages:watch_live"
tune = "richcli_stages:tune"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "richcli_stages.py").write_text(STAGES_PY)
    (tmp_path / "crucible.toml").write_text(TOML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "richcli_stages", raising=False)
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    # Whatever the developer's shell says, captured stdout is not a terminal here.
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return tmp_path


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Console:
    """A recording console that says it is a terminal, used by every command."""
    console = Console(
        record=True,
        force_terminal=True,
        width=140,
        file=io.StringIO(),
        markup=False,
        highlight=False,
        emoji=False,
    )
    monkeypatch.setattr(_console, "make_console", lambda: console)
    return console


def experiment_file(project: Path, *stages: str, transient: bool = False) -> Path:
    lines = ['id = "rich-demo"']
    for name in stages:
        lines += ["[[pipeline]]", f'name = "{name}"']
        if transient:
            lines += ['restart = "transient"', "backoff = 0"]
    path = project / "exp.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- run: the plain path ---------------------------------------------------------------


def test_run_in_a_pipe_prints_one_line_per_event_while_the_run_goes_on(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "seed", "watch_plain")
    assert main(["run", str(exp), "--run-id", "p1", "--no-persist"]) == 0
    lines = capsys.readouterr().out.splitlines()
    progress = lines[: lines.index("run p1  experiment rich-demo  completed")]
    assert progress[0] == "run p1: rich-demo, 2 stage(s)"
    assert progress[1] == "[1/2] seed: started"
    assert progress[2].startswith("[1/2] seed: completed in ")
    assert progress[3] == "[2/2] watch_plain: started"
    assert progress[4].startswith("[2/2] watch_plain: completed in ")
    assert progress[5].startswith("run p1: completed in ")
    assert "  saw_progress: true" in lines
    assert not any(ch in "".join(lines) for ch in "┏│━")


def test_run_in_a_pipe_reports_restarts_and_failures(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "flaky", "explode", transient=True)
    # explode is transient too: it is retried max_restarts (3) times, then the run fails.
    assert main(["run", str(exp), "--run-id", "f1", "--no-persist"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "[1/2] flaky: restarting (attempt 2) in 0.00 s" in lines
    assert "[1/2] flaky: started (attempt 2)" in lines
    assert "[2/2] explode: started (attempt 4)" in lines
    failed = [line for line in lines if line.startswith("[2/2] explode: failed")]
    assert failed == [
        "[2/2] explode: failed (attempt 4): RuntimeError: kaboom (gave up: stage restart window)"
    ]
    assert any(line.startswith("run f1: failed in ") for line in lines)
    assert "stage 'explode' failed after 4 attempts" in captured.err


def test_no_progress_on_a_terminal_prints_the_plain_lines(
    project: Path, terminal: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "seed")
    assert main(["run", str(exp), "--run-id", "np", "--no-persist", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "[1/1] seed: started" in out
    assert terminal.export_text() == ""


# -- run: the terminal path ------------------------------------------------------------


def test_run_on_a_terminal_draws_the_stage_table_live(
    project: Path, terminal: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "seed", "watch_live")
    assert main(["run", str(exp), "--run-id", "t1"]) == 0
    text = terminal.export_text()
    assert "store: sqlite:///./.crucible/crucible.db" in text
    last_frame = text[text.rindex("run t1  experiment rich-demo") :]
    assert last_frame.splitlines()[0].startswith("run t1  experiment rich-demo  completed  in ")
    rows = [line.split("│")[1:-1] for line in last_frame.splitlines() if line.startswith("│")]
    cells = [[cell.strip() for cell in row] for row in rows]
    assert [c[:5] for c in cells[:2]] == [
        ["1", "✓", "seed", "completed", "1"],
        ["2", "✓", "watch_live", "completed", "1"],
    ]
    metrics = {c[0]: c[1] for c in cells[2:]}
    assert metrics == {"n": "1", "saw_progress": "true"}
    # Nothing but the console wrote to stdout: no plain lines beside the table.
    assert capsys.readouterr().out == ""


def test_run_on_a_terminal_shows_failures_as_text_not_markup(
    project: Path, terminal: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "flaky", "explode")
    assert main(["run", str(exp), "--run-id", "t2", "--no-persist"]) == 1
    text = terminal.export_text()
    last_frame = text[text.rindex("run t2  experiment rich-demo") :]
    assert "failed" in last_frame.splitlines()[0]
    flaky = next(line for line in last_frame.splitlines() if "flaky" in line)
    assert "ConnectionError: [bold]first try[/bold] fails" in flaky
    explode = next(line for line in last_frame.splitlines() if "explode" in line)
    assert "not run" in explode
    assert "stage 'flaky' failed after 1 attempt" in capsys.readouterr().err


def test_run_json_stays_json_on_a_terminal(
    project: Path, terminal: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "seed")
    assert main(["run", str(exp), "--json", "--no-persist"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"] == {"n": 1}
    assert terminal.export_text() == ""


def test_terminal_detection_is_rich_own(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # TTY_COMPATIBLE=1 is rich's switch for "this output understands a terminal".
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    exp = experiment_file(project, "seed")
    assert main(["run", str(exp), "--no-persist"]) == 0
    out = capsys.readouterr().out
    assert "┏" in out
    assert "\x1b[" in out
    assert "[1/1] seed: started" not in out


# -- the progress model ----------------------------------------------------------------


def _event(seq: int, type_: str, index: int | None = None, **kw: object) -> RunEvent:
    stage = None if index is None else f"s{index}"
    attempt = kw.pop("attempt", None if index is None else 1)
    return RunEvent(seq, type_, "r", float(seq), 1000.0 + seq, stage, index, attempt, dict(kw))  # type: ignore[arg-type]


def test_progress_folds_timeouts_skips_and_cancellation() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name=f"s{i}") for i in range(4)])
    out = io.StringIO()
    view = PlainProgress(RunProgress(exp, "r"), out)
    for event in [
        _event(1, "run_started"),
        _event(2, "stage_skipped", 0, attempt=None),
        _event(3, "stage_started", 1),
        _event(4, "stage_timeout", 1, timeout=2.5),
        _event(5, "stage_restarted", 1, attempt=2, after="StageTimeout", delay=1.5),
        _event(6, "stage_started", 1, attempt=2),
        _event(7, "run_cancelled", status="cancelled", duration=4.25),
    ]:
        view.update(event)
    assert out.getvalue().splitlines() == [
        "run r: e, 4 stage(s)",
        "[1/4] s0: skipped",
        "[2/4] s1: started",
        "[2/4] s1: timed out after 2.5 s (attempt 1)",
        "[2/4] s1: restarting (attempt 2) in 1.50 s",
        "[2/4] s1: started (attempt 2)",
        "run r: cancelled in 4.25 s",
    ]
    rows = view.progress.rows
    assert [(r.status, r.attempt) for r in rows] == [
        ("skipped", 0),
        ("cancelled", 2),
        ("not run", 0),
        ("not run", 0),
    ]
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(render_progress(view.progress, now=2000.0))
    text = console.export_text()
    assert text.splitlines()[0] == "run r  experiment e  cancelled  in 4.25 s"
    assert "│ 2 │ ✗ │ s1    │ cancelled  │       2 │" in text


def test_a_running_stage_shows_a_ticking_clock() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="s0")])
    progress = RunProgress(exp, "r")
    progress.apply(_event(1, "run_started"))
    progress.apply(_event(2, "stage_started", 0))  # wall 1002.0
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(render_progress(progress, now=1004.5))
    assert "2.50 s" in console.export_text()
    console.print(render_progress(progress, now=1002.25))
    assert "250.0 ms" in console.export_text()


# -- stages ----------------------------------------------------------------------------


def test_stages_detail_on_a_terminal_has_a_row_per_option(project: Path, terminal: Console) -> None:
    assert main(["stages", "--name", "data_checks"]) == 0
    text = terminal.export_text()
    tables = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()]
    rows = {cells[0]: cells for cells in tables if cells and cells[0]}
    assert rows["required_fields"][1:5] == ["list[string]", "no", '["input", "output"]', ""]
    assert rows["required_fields"][5].startswith("keys every example must have")
    assert rows["fail_fast"][1:4] == ["boolean", "no", "false"]
    assert "Lightweight data validation" in text


def test_stages_detail_reads_a_dict_schema_and_its_option_descriptions(
    project: Path, terminal: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stages", "--name", "tune"]) == 0
    text = terminal.export_text()
    model = next(line for line in text.splitlines() if "│ model" in line)
    assert [c.strip() for c in model.split("│")[1:-1]] == [
        "model",
        "string",
        "yes",
        "",
        "",
        "which model to tune",
    ]
    mode = next(line for line in text.splitlines() if "│ mode " in line)
    assert [c.strip() for c in mode.split("│")[1:-1]] == [
        "mode",
        "enum",
        "no",
        '"fast"',
        '"fast", "exact"',
        "[red]speed[/red]",
    ]
    assert capsys.readouterr().out == ""


def test_stages_detail_in_a_pipe_lists_types_defaults_allowed_values_and_descriptions(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stages", "--name", "tune"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Stage: tune",
        "Module: richcli_stages:tune",
        "Description:",
        "  A stage described by a dict schema",
        "Required Options:",
        "  model  string",
        "      which model to tune",
        "Optional Options:",
        '  mode   enum     default: "fast"  one of: "fast", "exact"',
        "      [red]speed[/red]",
        "  steps  integer  default: 10",
    ]


def test_stages_list_on_a_terminal_is_a_table(project: Path, terminal: Console) -> None:
    assert main(["stages"]) == 0
    text = terminal.export_text()
    assert text.startswith("Available stages")
    tune = next(line for line in text.splitlines() if "│ tune" in line)
    assert [c.strip() for c in tune.split("│")[1:-1]] == [
        "tune",
        "A stage described by a dict schema",
        "model",
        "mode, steps",
    ]


def test_stages_json_stays_json_on_a_terminal(
    project: Path, terminal: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stages", "--name", "tune", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["types"] == {"model": "string", "mode": "enum['fast', 'exact']", "steps": "integer"}
    assert doc["__extensions__"]["option_descriptions"]["model"] == "which model to tune"
    assert terminal.export_text() == ""


# -- runs ------------------------------------------------------------------------------


def test_runs_list_and_show_on_a_terminal_are_tables(
    project: Path, terminal: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "seed", "flaky", transient=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_console, "make_console", lambda: Console(file=io.StringIO()))
        assert main(["run", str(exp), "--run-id", "stored"]) == 0
    capsys.readouterr()
    assert main(["runs", "list"]) == 0
    text = terminal.export_text()
    row = next(line for line in text.splitlines() if "│ stored" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:3] == ["stored", "rich-demo", "completed"]
    assert main(["runs", "show", "stored"]) == 0
    text = terminal.export_text()
    assert text.splitlines()[0].split() == ["run", "stored"]
    tables = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()]
    attempts = [cells[:4] for cells in tables if len(cells) == 6 and cells[0] != "#"]
    assert attempts == [
        ["0", "seed", "1", "completed"],
        ["1", "flaky", "1", "failed"],
        ["1", "flaky", "2", "completed"],
    ]
    assert any(line.startswith("│ flaky") and '"ok"' in line for line in text.splitlines())
    assert capsys.readouterr().out == ""
    assert main(["runs", "show", "stored", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["id"] == "stored"


def test_runs_resume_in_a_pipe_prints_the_resumed_stages_as_they_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = experiment_file(project, "seed", "flaky")
    assert main(["run", str(exp), "--run-id", "again"]) == 1  # flaky fails its first try
    capsys.readouterr()
    assert main(["runs", "resume", "again"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "resuming run again before stage 1"
    assert "[1/2] seed: started" not in lines
    assert "[2/2] flaky: started" in lines
    assert any(line.startswith("[2/2] flaky: completed in ") for line in lines)
    assert lines[-1] == "run again: completed"
