"""The command line: run, stages and trace export, called through ``cli.main``."""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from contextlib import closing
from typing import TYPE_CHECKING

import pytest
from tests.store_faults import seed_unrecoverable_orphan

from crucible_actors.cli import main

if TYPE_CHECKING:
    from pathlib import Path

STAGES_PY = textwrap.dedent(
    """
    import crucible_actors as ca

    @ca.stage("seed", description="Seed the examples")
    def seed(ctx, opts):
        return ctx.assign("examples", [{"input": "a", "output": "b"}]).put_metric("n", 1)

    @ca.stage("explode")
    def explode(ctx, opts):
        raise RuntimeError("kaboom")
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "maincli_stages.py").write_text(STAGES_PY)
    (tmp_path / "crucible.toml").write_text(
        '[stages]\nseed = "maincli_stages:seed"\nexplode = "maincli_stages:explode"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "maincli_stages", raising=False)
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_run_prints_a_summary_and_exits_0(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(
        project / "exp.toml",
        """
        id = "cli-demo"
        [[pipeline]]
        name = "seed"
        [[pipeline]]
        name = "data_checks"
        """,
    )
    assert main(["run", str(exp), "--run-id", "r1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "store: sqlite:///./.crucible/crucible.db"
    assert "run r1  experiment cli-demo  completed" in out
    assert "1. seed" in out
    assert "2. data_checks" in out
    assert "n: 1" in out
    assert (project / ".crucible" / "crucible.db").is_file()


def test_run_of_a_failing_experiment_exits_1_naming_the_stage(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(
        project / "exp.toml",
        """
        id = "boom"
        [[pipeline]]
        name = "seed"
        [[pipeline]]
        name = "explode"
        """,
    )
    assert main(["run", str(exp), "--no-persist"]) == 1
    captured = capsys.readouterr()
    assert "failed" in captured.out
    assert "error: stage 'explode' failed after 1 attempt: RuntimeError: kaboom" in captured.err


def test_run_of_a_bad_file_exits_2_with_the_field_path(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(
        project / "bad.json",
        '{"id": "x", "pipeline": [{"name": "seed"}, {"name": "a", "options": [1]}]}',
    )
    assert main(["run", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "pipeline[1].options: expected object, got array" in err
    assert "bad.json" in err


def test_run_json_prints_the_final_context_and_seeds_assigns(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(project / "exp.toml", 'id = "j"\n[[pipeline]]\nname = "data_checks"\n')
    assigns = project / "assigns.json"
    assigns.write_text(json.dumps({"examples": [{"input": "q", "output": ""}]}))
    assert main(["run", str(exp), "--json", "--no-persist", "--assigns", str(assigns)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["experiment_id"] == "j"
    assert doc["metrics"]["data_checks"]["missing_required"] == 1
    assert doc["assigns"]["completed_stages"] == ["data_checks"]


def test_run_validate_options_error_fails_before_the_stage(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(
        project / "exp.toml",
        'id = "v"\n[[pipeline]]\nname = "data_checks"\noptions = { fail_fast = "yes" }\n',
    )
    assert main(["run", str(exp), "--no-persist", "--validate-options", "error"]) == 1
    assert "fail_fast: expected boolean, got 'yes'" in capsys.readouterr().err


def test_stages_lists_every_stage_in_the_reference_format(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:2] == ["Available Stages:", "================="]
    for name in ("bench", "data_checks", "guardrails", "report", "validate", "seed"):
        assert any(line.startswith(f"{name} (") for line in lines), name
    i = lines.index("seed (maincli_stages:seed)")
    assert lines[i + 1 : i + 4] == [
        "  Description: Seed the examples",
        "  Required: (none)",
        "  Optional: (none)",
    ]


def test_stages_detail_shows_options_with_types_and_defaults(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stages", "-n", "data_checks"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Stage: data_checks"
    assert out[1].startswith("Module: crucible_actors.stages.data_checks:")
    assert out[2] == "Description:"
    assert "Required Options: (none)" in out
    assert "Optional Options:" in out
    fields = [line for line in out if line.strip().startswith("required_fields")]
    assert fields
    assert 'default: ["input", "output"]' in fields[0]
    assert "list[string]" in fields[0]


def test_stages_unknown_name_exits_2_with_a_hint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stages", "--name", "benhc"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Unknown stage: benhc"
    assert "Did you mean 'bench'?" in out[1]


def test_stages_json_is_machine_readable(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {entry["name"]: entry for entry in doc}
    assert by_name["validate"]["schema"]["types"]["strict"] == "boolean"
    assert by_name["validate"]["schema"]["defaults"] == {"strict": False}


@pytest.mark.slow
def test_trace_export_renders_a_stored_trace(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(
        project / "exp.toml",
        'id = "t"\nname = "Traced"\n'
        '[[pipeline]]\nname = "seed"\n[[pipeline]]\nname = "data_checks"\n',
    )
    assert main(["run", str(exp), "--trace", "--run-id", "tr1"]) == 0
    capsys.readouterr()
    assert main(["trace", "export", "tr1", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    types = [e["type"] for e in doc["events"]]
    assert types == ["stage_start", "stage_complete", "stage_start", "stage_complete"]
    out_file = project / "out" / "trace.html"
    assert main(["trace", "export", "tr1", "--format", "html", "-o", str(out_file)]) == 0
    html = out_file.read_text()
    assert "<title>Traced - Trace</title>" in html
    assert main(["trace", "export", "tr1", "--format", "markdown"]) == 0
    assert "# Traced - Trace" in capsys.readouterr().out


def test_trace_export_of_a_run_without_trace_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(project / "exp.toml", 'id = "t"\n[[pipeline]]\nname = "seed"\n')
    assert main(["run", str(exp), "--run-id", "plain"]) == 0
    capsys.readouterr()
    assert main(["trace", "export", "plain"]) == 2
    assert "has no decision trace; run it with --trace" in capsys.readouterr().err
    assert main(["trace", "export", "missing"]) == 2
    assert "no run with id 'missing'" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


HANG_PY = textwrap.dedent(
    """
    import pathlib
    import anyio
    import crucible_actors as ca

    @ca.stage("hang")
    async def hang(ctx, opts):
        pathlib.Path("started").write_text("yes")
        await anyio.sleep_forever()
        return ctx
    """
)


@pytest.mark.slow
def test_ctrl_c_cancels_the_run_and_records_it_as_cancelled(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "hang_stages.py").write_text(HANG_PY)
    (tmp_path / "exp.toml").write_text('id = "ctrlc"\n[[pipeline]]\nstage = "hang_stages:hang"\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("CRUCIBLE_STORE_URL", None)
    cli = [sys.executable, "-m", "crucible_actors"]
    proc = subprocess.Popen(
        [*cli, "run", "exp.toml", "--run-id", "c1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():  # the stage is running
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted: the run was cancelled" in err
    shown = subprocess.run(
        [*cli, "runs", "show", "c1", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(shown.stdout)["run"]["status"] == "cancelled"


# -- store errors: one line, exit 2 (issue 21) -----------------------------------------


@pytest.mark.slow
def test_run_on_a_locked_store_prints_one_line_and_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(project / "exp.toml", 'id = "locked"\n[[pipeline]]\nname = "seed"\n')
    db = project / "locked.db"
    assert main(["run", str(exp), "--store", f"sqlite:///{db}"]) == 0  # creates the store
    capsys.readouterr()
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than we wait
        url = f"sqlite:///{db}?busy_timeout=0.1&retry_for=0.2"
        assert main(["run", str(exp), "--store", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: store sqlite:///{db}: cannot use the database:")
    assert "database is locked" in err


def test_run_on_a_store_with_a_corrupt_row_prints_one_line_and_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(project / "exp.toml", 'id = "corrupt"\n[[pipeline]]\nname = "seed"\n')
    db = project / "corrupt.db"
    seed_unrecoverable_orphan(db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE runs SET metrics = '{not json' WHERE id = 'poison1'")
        conn.commit()
    assert main(["run", str(exp), "--store", f"sqlite:///{db}"]) == 2  # recovery lists it
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: store sqlite:///{db}: a stored value is not valid JSON")


def test_run_goes_on_when_one_orphan_cannot_be_recovered(
    project: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    exp = write(project / "exp.toml", 'id = "after"\n[[pipeline]]\nname = "seed"\n')
    db = project / "poisoned.db"
    seed_unrecoverable_orphan(db)
    assert main(["run", str(exp), "--store", f"sqlite:///{db}", "--run-id", "fresh"]) == 0
    assert "run fresh  experiment after  completed" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if "could not recover" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("could not recover run poison1 (left as it is): StoreError:")
    assert "injected: this run cannot be written" in warnings[0]
    assert "\n" not in warnings[0]


def test_run_whose_store_fails_mid_run_prints_one_line_and_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = write(
        project / "exp.toml",
        'id = "midway"\n[[pipeline]]\nname = "seed"\n[[pipeline]]\nname = "seed"\n',
    )
    db = project / "midway.db"
    assert main(["run", str(exp), "--store", f"sqlite:///{db}"]) == 0  # creates the store
    with closing(sqlite3.connect(db)) as conn:  # a real store error at the 2nd checkpoint
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON checkpoints WHEN NEW.stage_index = 1"
            " BEGIN SELECT RAISE(ABORT, 'injected: checkpoint refused'); END"
        )
        conn.commit()
    capsys.readouterr()
    assert main(["run", str(exp), "--store", f"sqlite:///{db}", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"error: store sqlite:///{db}:")
    assert "injected: checkpoint refused" in captured.err
