"""The cache at the command line: ``run`` twice in real processes, ``--no-cache``,
``cache list|clear``, and a sweep run again."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from tests.helpers import cli_json

from crucible_actors import Experiment, RunEvent, StageDef
from crucible_actors.cli import main
from crucible_actors.cli._progress import PlainProgress, RunProgress, render_progress

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

ONE_RUN = b"""
id = "cached-eval"
[cache]
default = true

[[pipeline]]
name = "questions"
stage = "sweep_stages:questions"

[[pipeline]]
name = "call_model"
stage = "sweep_stages:call_model"
options = { model = "large" }
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the cwd, with the sweep example, its stages and a one-run file."""
    for name in ("sweep.toml", "sweep_stages.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "eval.toml").write_bytes(ONE_RUN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def run_cli(workdir: Path, *argv: str) -> str:
    """Run ``crucible-actors ARGV`` in a process of its own; return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "crucible_actors", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_a_second_process_takes_the_stages_from_the_cache(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_cli(workdir, "run", "eval.toml", "--no-progress").splitlines()
    assert "[1/2] questions: started" in first
    assert "[2/2] call_model: started" in first
    run1 = first[1].split()[1].rstrip(":")
    second = run_cli(workdir, "run", "eval.toml", "--no-progress").splitlines()
    assert f"[1/2] questions: cached (computed by run {run1})" in second
    assert f"[2/2] call_model: cached (computed by run {run1})" in second
    assert not any("started" in line for line in second)
    assert [ln.split()[:3] for ln in second if ln.startswith("  ")][:2] == [
        ["1.", "questions", "cached"],
        ["2.", "call_model", "cached"],
    ]
    accuracy = [ln for ln in first if ln.startswith("  accuracy:")]
    assert accuracy
    assert accuracy == [ln for ln in second if ln.startswith("  accuracy:")]
    run2 = second[1].split()[1].rstrip(":")

    shown = cli_json(capsys, "runs", "show", run2, "--json")
    assert [(s["stage"], s["cache_hit"]) for s in shown["stages"]] == [
        ("questions", True),
        ("call_model", True),
    ]
    listed = cli_json(capsys, "cache", "list", "--json")
    assert listed["store"] == "sqlite:///./.crucible/crucible.db"
    assert [r["stage"] for r in listed["results"]] == ["call_model", "questions"]
    assert {r["run_id"] for r in listed["results"]} == {run1}
    assert all(len(r["key"]) == 64 and r["size"] > 0 for r in listed["results"])
    assert main(["cache", "list", "--stage", "questions"]) == 0
    table = capsys.readouterr().out.splitlines()
    headers = [cell.strip() for cell in table[0].split("  ") if cell.strip()]
    assert headers == [
        "KEY",
        "STAGE",
        "VERSION",
        "CODE",
        "SIZE",
        "COMPUTED BY RUN",
        "CREATED (UTC)",
    ]
    fingerprint = shown["provenance"]["stages"]["questions"]
    assert table[1].split()[1:4] == ["questions", "1", fingerprint[:12]]
    assert {r["code"] for r in listed["results"]} == set(shown["provenance"]["stages"].values())
    assert table[-1].startswith("1 result(s), ")

    # --no-cache runs everything and stores nothing new.
    third = run_cli(workdir, "run", "eval.toml", "--no-progress", "--no-cache").splitlines()
    assert "[2/2] call_model: started" in third
    assert len(cli_json(capsys, "cache", "list", "--json")["results"]) == 2

    # Clearing one stage: it runs again, the other still hits.
    assert cli_json(capsys, "cache", "clear", "--stage", "call_model", "--json")["removed"] == 1
    fourth = run_cli(workdir, "run", "eval.toml", "--no-progress").splitlines()
    assert any(ln.startswith("[1/2] questions: cached") for ln in fourth)
    assert "[2/2] call_model: started" in fourth
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == (
        "store sqlite:///./.crucible/crucible.db: removed 2 cached result(s)\n"
    )
    assert main(["cache", "list"]) == 0
    assert "no cached results" in capsys.readouterr().out


def test_a_sweep_run_again_says_how_much_came_from_the_cache(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "sweep.toml", "--max-concurrent", "4"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("cache:") for line in first)
    assert main(["run", "sweep.toml", "--max-concurrent", "4"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert (
        "cache: 24 of 24 stages replayed from the stage result cache (--no-cache computes them)"
        in second
    )
    metrics = [line.split()[-1] for line in first[3:15]]
    assert metrics == [line.split()[-1] for line in second[3:15]]
    assert main(["run", "sweep.toml", "--no-cache"]) == 0
    assert not any(line.startswith("cache:") for line in capsys.readouterr().out.splitlines())


def test_cache_list_of_an_empty_store_and_a_missing_subcommand(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "list", "--store", "memory://"]) == 0
    assert "no cached results" in capsys.readouterr().out
    assert main(["cache"]) == 2


def test_progress_shows_a_cached_stage_as_done_with_its_source_run() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="load"), StageDef(name="score")])
    out = io.StringIO()
    view = PlainProgress(RunProgress(exp, "r"), out)
    data = {"key": "k" * 64, "source_run": "r0", "duration": 0.0004}
    for event in [
        RunEvent(1, "run_started", "r", 1.0, 1001.0),
        RunEvent(2, "stage_cached", "r", 2.0, 1002.0, "load", 0, 1, data),
        RunEvent(3, "stage_started", "r", 3.0, 1003.0, "score", 1, 1),
        RunEvent(4, "stage_completed", "r", 4.0, 1004.0, "score", 1, 1, {"duration": 1.0}),
        RunEvent(5, "run_completed", "r", 5.0, 1005.0, data={"status": "completed"}),
    ]:
        view.update(event)
    assert out.getvalue().splitlines()[1:3] == [
        "[1/2] load: cached (computed by run r0)",
        "[2/2] score: started",
    ]
    assert [(r.status, r.duration) for r in view.progress.rows] == [
        ("cached", 0.0004),
        ("completed", 1.0),
    ]
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(render_progress(view.progress, now=2000.0))
    assert "│ 1 │ ✓ │ load  │ cached     │       1 │    0.4 ms │" in console.export_text()


EDIT_STAGES = b"""
from crucible_actors import Context, stage


@stage("prepare")
def prepare(ctx: Context, opts: object) -> Context:
    return ctx.assign("n", 3)


@stage("score")
def score(ctx: Context, opts: object) -> Context:
    # SCORE-BODY
    return ctx.put_metric("score", ctx.assigns["n"] * 10)
"""

EDIT_RUN = b"""
id = "edited"
[cache]
default = true

[[pipeline]]
name = "prepare"
stage = "edit_stages:prepare"

[[pipeline]]
name = "score"
stage = "edit_stages:score"
"""


def _git(cwd: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _run_id(out: str) -> str:
    return out.splitlines()[1].split()[1].rstrip(":")


@pytest.mark.slow
def test_editing_a_cached_stage_body_computes_it_again_and_provenance_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The contract: same name, same version, new body -> a miss; unchanged -> a hit."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    (tmp_path / "edit_stages.py").write_bytes(EDIT_STAGES)
    (tmp_path / "edit.toml").write_bytes(EDIT_RUN)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "edit_stages.py", "edit.toml")
    _git(tmp_path, "commit", "-q", "-m", "stages")

    first = run_cli(tmp_path, "run", "edit.toml", "--no-progress")
    assert "[2/2] score: started" in first
    assert "  score: 30" in first
    # A comment-only edit is not a code change (the fingerprint is of the parsed source).
    (tmp_path / "edit_stages.py").write_bytes(
        EDIT_STAGES.replace(b"# SCORE-BODY", b"# a comment, reworded")
    )
    same = run_cli(tmp_path, "run", "edit.toml", "--no-progress")
    assert any(line.startswith("[2/2] score: cached") for line in same.splitlines())
    # The body changes, the name and version do not: score runs again, prepare still hits.
    (tmp_path / "edit_stages.py").write_bytes(EDIT_STAGES.replace(b"* 10", b"* 100"))
    edited = run_cli(tmp_path, "run", "edit.toml", "--no-progress")
    assert any(line.startswith("[1/2] prepare: cached") for line in edited.splitlines())
    assert "[2/2] score: started" in edited
    assert "  score: 300" in edited
    # Unchanged since: both hit, with the new result.
    again = run_cli(tmp_path, "run", "edit.toml", "--no-progress")
    assert any(line.startswith("[2/2] score: cached") for line in again.splitlines())
    assert "  score: 300" in again

    run1, run3 = _run_id(first), _run_id(edited)
    shown1 = cli_json(capsys, "runs", "show", run1, "--json")["provenance"]
    shown3 = cli_json(capsys, "runs", "show", run3, "--json")["provenance"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shown1["git"] == {"commit": head, "dirty": False}
    assert shown3["git"] == {"commit": head, "dirty": True}
    assert shown1["python"] == ".".join(map(str, sys.version_info[:3]))
    assert shown1["crucible_actors"]
    assert "crucible-actors" in shown1["packages"]
    assert shown1["stages"]["prepare"] == shown3["stages"]["prepare"]
    assert shown1["stages"]["score"] != shown3["stages"]["score"]

    diff = cli_json(capsys, "runs", "diff", run1, run3, "--json")
    assert diff["same"] is False
    assert diff["code"] == [
        {"key": "score", "a": shown1["stages"]["score"], "b": shown3["stages"]["score"]}
    ]
    assert diff["environment"] == [{"key": "git.dirty", "a": False, "b": True}]
    assert diff["metrics"] == [{"key": "score", "a": 30, "b": 300}]
    assert diff["options"] == diff["packages"] == diff["inputs"] == []
    assert main(["runs", "diff", run1, run3]) == 0
    human = capsys.readouterr().out
    assert f"runs {run1} (A) and {run3} (B) differ:" in human
    assert "code:" in human
    assert "score" in human
    assert "git.dirty" in human
