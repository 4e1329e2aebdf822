"""``crucible-actors runs list|show|resume`` and ``db migrate``, through ``cli.main``."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest
from tests.helpers import cli_json

import crucible_actors
from crucible_actors import Experiment, Registry, StageDef, StageFailed
from crucible_actors.cli import main

if TYPE_CHECKING:
    from pathlib import Path

STAGES = """
    from pathlib import Path

    from crucible_actors import stage


    def _log(ctx, name):
        with open(Path(ctx.assigns["dir"]) / "log", "a") as f:
            f.write(f"{ctx.run_id} {name}\\n")


    @stage("a")
    def a(ctx, opts):
        _log(ctx, "a")
        return ctx.put_metric("acc", 0.75).add_output({"id": 1})


    @stage("b")
    def b(ctx, opts):
        _log(ctx, "b")
        if not (Path(ctx.assigns["dir"]) / "fixed").exists():
            raise RuntimeError("b is broken")
        return ctx.put_metric("b", [1, 2]).put_artifact(
            "report_md",
            {"name": "report", "type": "report", "location": "out/report.md", "format": "markdown"},
        )
"""


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite store URL in tmp_path, the cwd, with the stage module importable."""
    (tmp_path / "cli_stages.py").write_text(textwrap.dedent(STAGES))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    return f"sqlite:///{tmp_path}/cli.db"


def experiment(exp_id: str) -> Experiment:
    return Experiment(
        id=exp_id,
        pipeline=[
            StageDef(name="a", stage="cli_stages:a"),
            StageDef(name="b", stage="cli_stages:b"),
        ],
    )


def record(url: str, run_id: str, exp_id: str, *, ok: bool, tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    if ok:
        fixed.touch()
    else:
        fixed.unlink(missing_ok=True)
    try:
        crucible_actors.run(
            experiment(exp_id),
            store=url,
            run_id=run_id,
            assigns={"dir": str(tmp_path)},
            registry=Registry(),
        )
    except StageFailed:
        assert not ok
    fixed.unlink(missing_ok=True)


@pytest.fixture
def seeded(url: str, tmp_path: Path) -> str:
    record(url, "run-1", "exp-a", ok=True, tmp_path=tmp_path)
    record(url, "run-2", "exp-b", ok=False, tmp_path=tmp_path)
    record(url, "run-3", "exp-a", ok=True, tmp_path=tmp_path)
    return url


def test_runs_list_prints_a_table_newest_first(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "--store", seeded]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "EXPERIMENT",
        "STATUS",
        "STARTED",
        "(UTC)",
        "DURATION",
        "FAILED",
        "AT",
    ]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["run-3", "exp-a", "completed"],
        ["run-2", "exp-b", "failed"],
        ["run-1", "exp-a", "completed"],
    ]
    assert lines[2].split()[-1] == "b"


def test_runs_list_json_filters_and_pages(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = cli_json(capsys, "runs", "list", "--store", seeded, "--json")
    assert doc["store"] == seeded
    assert doc["next_before"] is None
    assert [r["id"] for r in doc["runs"]] == ["run-3", "run-2", "run-1"]
    first = doc["runs"][0]
    assert set(first) == {
        "id",
        "experiment_id",
        "status",
        "metrics",
        "outputs",
        "metadata",
        "failure",
        "started_at",
        "finished_at",
        "owner_id",
        "resume_count",
        "provenance",
    }
    assert first["metrics"] == {"acc": 0.75, "b": [1, 2]}
    assert first["started_at"].endswith(("Z", "+00:00"))
    doc = cli_json(capsys, "runs", "list", "--store", seeded, "--json", "--status", "failed")
    assert [r["id"] for r in doc["runs"]] == ["run-2"]
    assert doc["runs"][0]["failure"]["reason_type"] == "RuntimeError"
    doc = cli_json(capsys, "runs", "list", "--store", seeded, "--json", "--experiment", "exp-a")
    assert [r["id"] for r in doc["runs"]] == ["run-3", "run-1"]
    doc = cli_json(capsys, "runs", "list", "--store", seeded, "--json", "--limit", "2")
    assert [r["id"] for r in doc["runs"]] == ["run-3", "run-2"]
    assert doc["next_before"] == "run-2"
    doc = cli_json(capsys, "runs", "list", "--store", seeded, "--json", "--before", "run-2")
    assert [r["id"] for r in doc["runs"]] == ["run-1"]


def test_runs_list_on_an_empty_store(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--store", url]) == 0
    assert capsys.readouterr().out == f"no runs in {url}\n"


def test_runs_show_prints_stages_metrics_failure_and_artifacts(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "show", "run-3", "--store", seeded]) == 0
    out = capsys.readouterr().out
    assert "run run-3" in out
    assert "status      completed" in out
    assert "checkpoint  after the last stage" in out
    assert "STAGE" in out
    assert "ATTEMPT" in out
    assert "acc: 0.75" in out
    assert "b: [1, 2]" in out
    assert "report  report  markdown  out/report.md" in out
    assert main(["runs", "show", "run-2", "--store", seeded]) == 0
    out = capsys.readouterr().out
    assert "status      failed" in out
    assert "failure     stage 'b': RuntimeError: b is broken (after 1 attempt)" in out
    assert "checkpoint  before stage 1" in out
    assert "RuntimeError: b is broken" in out.split("stages:")[1]


def test_runs_show_json(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = cli_json(capsys, "runs", "show", "run-2", "--store", seeded, "--json")
    assert set(doc) == {
        "store",
        "run",
        "stages",
        "attempts",
        "artifacts",
        "checkpoint",
        "provenance",
    }
    assert set(doc["provenance"]["stages"]) == {"a", "b"}
    assert doc["provenance"]["environment"] == doc["run"]["provenance"]["environment"]
    assert doc["run"]["status"] == "failed"
    assert doc["checkpoint"]["index"] == 1
    assert [(s["index"], s["stage"], s["status"], s["attempts"]) for s in doc["stages"]] == [
        (0, "a", "completed", 1),
        (1, "b", "failed", 1),
    ]
    assert [(a["stage"], a["attempt"], a["status"]) for a in doc["attempts"]] == [
        ("a", 1, "completed"),
        ("b", 1, "failed"),
    ]
    assert doc["attempts"][1]["error"] == "RuntimeError: b is broken"
    doc = cli_json(capsys, "runs", "show", "run-1", "--store", seeded, "--json")
    assert doc["artifacts"] == [
        {
            "run_id": "run-1",
            "key": "report_md",
            "name": "report",
            "type": "report",
            "location": "out/report.md",
            "format": "markdown",
            "metadata": {},
        }
    ]


def test_runs_show_of_an_unknown_run_is_an_error(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "show", "nope", "--store", seeded]) == 2
    assert "no run with id 'nope'" in capsys.readouterr().err


def test_runs_resume_reruns_only_the_failed_stage(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fixed").touch()
    assert main(["runs", "resume", "run-2", "--store", seeded]) == 0
    out = capsys.readouterr().out
    assert "resuming run run-2 before stage 1" in out
    assert "run run-2: completed" in out
    log = (tmp_path / "log").read_text().splitlines()
    assert [line for line in log if line.startswith("run-2")] == ["run-2 a", "run-2 b", "run-2 b"]
    doc = cli_json(capsys, "runs", "show", "run-2", "--store", seeded, "--json")
    assert doc["run"]["status"] == "completed"
    assert doc["run"]["failure"] is None
    assert doc["run"]["metrics"] == {"acc": 0.75, "b": [1, 2]}


def test_runs_resume_json_and_refusals(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fixed").touch()
    doc = cli_json(capsys, "runs", "resume", "run-2", "--store", seeded, "--json")
    assert doc == {
        "store": seeded,
        "run_id": "run-2",
        "resumed_from": 1,
        "status": "completed",
        "failure": None,
    }
    assert main(["runs", "resume", "run-2", "--store", seeded]) == 2
    assert "already completed" in capsys.readouterr().err
    assert main(["runs", "resume", "ghost", "--store", seeded]) == 2
    assert "no run with id 'ghost'" in capsys.readouterr().err


def test_a_failed_resume_exits_1(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "resume", "run-2", "--store", seeded]) == 1
    out = capsys.readouterr().out
    assert "run run-2: failed" in out
    assert "RuntimeError: b is broken" in out


def test_store_url_comes_from_flag_then_environment_then_default(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record(url, "in-flag-store", "e", ok=True, tmp_path=tmp_path)
    env_url = f"sqlite:///{tmp_path}/env.db"
    record(env_url, "in-env-store", "e", ok=True, tmp_path=tmp_path)
    monkeypatch.setenv("CRUCIBLE_STORE_URL", env_url)
    doc = cli_json(capsys, "runs", "list", "--json")
    assert [r["id"] for r in doc["runs"]] == ["in-env-store"]
    doc = cli_json(capsys, "runs", "list", "--json", "--store", url)
    assert [r["id"] for r in doc["runs"]] == ["in-flag-store"]
    monkeypatch.delenv("CRUCIBLE_STORE_URL")
    doc = cli_json(capsys, "runs", "list", "--json")
    assert doc == {"store": "sqlite:///./.crucible/crucible.db", "runs": [], "next_before": None}
    assert (tmp_path / ".crucible" / "crucible.db").is_file()


def test_bad_arguments_and_stores_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--limit", "0", "--store", url]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert main(["runs", "list", "--store", "ftp://x"]) == 2
    assert "unknown store URL (scheme 'ftp')" in capsys.readouterr().err


def test_db_migrate_on_sqlite_reports_the_version(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "migrate", "--store", url]) == 0
    assert capsys.readouterr().out == (
        f"store {url}: applied 0001_initial, 0002_sweeps, 0003_cache, 0005_resume_count,"
        " 0006_owner_lease, 0008_provenance; schema at version 8\n"
    )
    assert main(["db", "migrate", "--store", url]) == 0
    assert "already at version 8" in capsys.readouterr().out
    doc = cli_json(capsys, "db", "migrate", "--store", url, "--json")
    assert doc == {"store": url, "applied": [], "version": 8}


@pytest.mark.postgres
def test_db_migrate_on_postgres_then_the_store_opens(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "--store", pg_url]) == 2
    assert "db migrate" in capsys.readouterr().err
    doc = cli_json(capsys, "db", "migrate", "--store", pg_url, "--json")
    assert doc == {
        "store": pg_url,
        "applied": [
            "0001_initial",
            "0002_sweeps",
            "0003_cache",
            "0004_blobs",
            "0005_resume_count",
            "0006_owner_lease",
            "0008_provenance",
        ],
        "version": 8,
    }
    assert main(["db", "migrate", "--store", pg_url]) == 0
    assert "already at version 8" in capsys.readouterr().out
    assert main(["runs", "list", "--store", pg_url]) == 0
    assert "no runs in" in capsys.readouterr().out
