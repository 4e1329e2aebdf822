"""``run FILE`` with a [sweep], ``runs list --sweep`` and ``compare``, through ``cli.main``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.helpers import cli_json, needs_extra

from crucible_actors.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the cwd, holding the sweep example and its stages."""
    for name in ("sweep.toml", "sweep_stages.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_sweep_file_runs_every_point_and_lists_them(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "sweep.toml", "--max-concurrent", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "store: sqlite:///./.crucible/crucible.db"
    assert out[1].endswith(": 12 runs (4 points x 3 repeats), 3 at a time")
    sweep_id = out[1].split()[1].rstrip(":")
    assert out[2].split() == ["#", "MODEL", "TEMPERATURE", "SEED", "STATUS", "RUN", "ID", "METRICS"]
    assert out[3].split()[:5] == ["0", "small", "0.0", "0", "completed"]
    assert out[-2] == f"sweep {sweep_id}: completed (12 completed)"
    assert out[-1] == f"compare the points: crucible-actors compare --sweep {sweep_id}"

    doc = cli_json(capsys, "runs", "list", "--sweep", sweep_id, "--json")
    assert doc["sweep"]["status"] == "completed"
    runs = doc["runs"]
    assert [r["seed"] for r in runs] == list(range(12))
    assert {
        (r["parameters"]["call_model.model"], r["parameters"]["call_model.temperature"])
        for r in runs
    } == {("small", 0.0), ("small", 0.7), ("large", 0.0), ("large", 0.7)}
    assert all(r["status"] == "completed" and "accuracy" in r["metrics"] for r in runs)
    assert main(["runs", "list", "--sweep", sweep_id]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith(f"sweep {sweep_id}  experiment model-sweep  completed  12/12")


@needs_extra("bench", "scipy")
def test_compare_sweep_and_runs_from_the_command_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "sweep.toml"]) == 0
    sweep_id = capsys.readouterr().out.splitlines()[1].split()[1].rstrip(":")
    doc = cli_json(capsys, "compare", "--sweep", sweep_id, "--pair-by", "id", "--format", "json")
    assert doc["ranking"][0] == "model=large temperature=0.0"
    assert doc["paired"] is True
    assert len(doc["comparisons"]) == 3
    # Two runs by id, written as an HTML page.
    listed = cli_json(capsys, "runs", "list", "--sweep", sweep_id, "--json")
    a, b = listed["runs"][0]["run_id"], listed["runs"][6]["run_id"]
    assert main(["compare", a, b, "--pair-by", "id", "--format", "html", "-o", "cmp.html"]) == 0
    page = (workdir / "cmp.html").read_text()
    assert "<svg" in page
    assert f"{b[:8]} is better than {a[:8]}." in page
    assert main(["compare", a, b, "--format", "markdown"]) == 0
    assert "**Verdict:**" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare"], "either two or more RUN_IDs or --sweep ID"),
        (["compare", "nope-a", "nope-b"], "no run with id 'nope-a'"),
        (["compare", "--sweep", "nope"], "no sweep 'nope'"),
        (["runs", "list", "--sweep", "nope"], "no sweep 'nope'"),
    ],
)
def test_compare_errors_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_sweeps_are_refused_before_any_run(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (workdir / "sweep.toml").read_text()
    (workdir / "typo.toml").write_text(
        text.replace('"call_model.temperature"', '"call_model.temp"')
    )
    assert main(["run", "typo.toml"]) == 2
    err = capsys.readouterr().err
    assert "sweep.call_model.temp: stage 'call_model' has no option 'temp' in its schema" in err
    big = text.replace('["small", "large"]', str(["small"] * 5001))
    (workdir / "big.toml").write_text(big)
    assert main(["run", "big.toml"]) == 2
    assert (
        "10002 points x 3 repeats = 30006 runs, more than 10000; pass --yes"
        in capsys.readouterr().err
    )
    assert main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []


FAILING = """
id = "model-sweep"

[[pipeline]]
name = "questions"
stage = "sweep_stages:questions"

[[pipeline]]
name = "call_model"
stage = "sweep_stages:call_model"

[sweep]
mode = "grid"
"call_model.model" = {models}
"""


def _sweep_file(workdir: Path, models: list[str]) -> str:
    (workdir / "failing.toml").write_text(FAILING.format(models=json.dumps(models)))
    return "failing.toml"


def test_a_failed_point_shows_why_and_compare_needs_two_completed(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "huge" is not a model the stage knows: its point fails with a KeyError.
    assert main(["run", _sweep_file(workdir, ["small", "huge", "large"])]) == 1
    out = capsys.readouterr().out.splitlines()
    sweep_id = out[1].split()[1].rstrip(":")
    failed = next(line for line in out if " huge " in line)
    assert failed.split()[:4] == ["1", "huge", "1", "failed"]
    assert failed.endswith("call_model: KeyError: 'huge'")
    assert out[-1] == f"compare the points: crucible-actors compare --sweep {sweep_id}"
    # The stored listing says why as well.
    assert main(["runs", "list", "--sweep", sweep_id]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if " huge " in line)
    assert listed.endswith("call_model: KeyError: 'huge'")

    # One point completed: nothing to compare; the hint says where the reasons are.
    assert main(["run", _sweep_file(workdir, ["small", "huge"])]) == 1
    out = capsys.readouterr().out.splitlines()
    assert not any("compare" in line for line in out)
    assert out[-1] == "see why a run failed: crucible-actors runs show RUN_ID"


def test_a_long_failure_reason_is_shortened_in_the_table() -> None:
    from crucible_actors._core.persistence._store import RunRecord
    from crucible_actors.cli._sweep import _result_text

    run = RunRecord(
        id="r",
        experiment_id="e",
        status="failed",
        failure={"stage": "fit", "reason_type": "ValueError", "message": "x" * 500 + "\nmore"},
    )
    text = _result_text(run)
    assert len(text) == 80
    assert text.startswith("fit: ValueError: xxx")
    assert text.endswith("...")
    done = RunRecord(id="r", experiment_id="e", status="completed", metrics={"acc": 0.5})
    assert _result_text(done) == "acc=0.5"


def test_runs_list_columns_shows_metrics_and_parameters(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "sweep.toml", "--max-concurrent", "4"]) == 0
    capsys.readouterr()
    cols = "metrics.accuracy,params.call_model.model,params.call_model.temperature"
    doc = cli_json(capsys, "runs", "list", "--columns", cols, "--json")
    assert doc["columns"] == cols.split(",")
    assert len(doc["values"]) == len(doc["runs"]) == 12
    for run, values in zip(doc["runs"], doc["values"], strict=True):
        assert values["metrics.accuracy"] == run["metrics"]["accuracy"]
        assert values["params.call_model.model"] in ("small", "large")
        assert values["params.call_model.temperature"] in (0.0, 0.7)
    # Each run's own parameters (not the experiment's latest definition).
    combos = {
        (v["params.call_model.model"], v["params.call_model.temperature"]) for v in doc["values"]
    }
    assert combos == {("small", 0.0), ("small", 0.7), ("large", 0.0), ("large", 0.7)}
    assert main(["runs", "list", "--limit", "2", "--columns", cols]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-3:] == [
        "METRICS.ACCURACY",
        "PARAMS.CALL_MODEL.MODEL",
        "PARAMS.CALL_MODEL.TEMPERATURE",
    ]
    first = doc["values"][0]
    assert lines[1].split()[-3:] == [
        str(first["metrics.accuracy"]),
        first["params.call_model.model"],
        str(first["params.call_model.temperature"]),
    ]
    assert main(["runs", "list", "--columns", "accuracy"]) == 2
    assert "expected 'metrics.<name>'" in capsys.readouterr().err
    sweep_id = doc["runs"][0]["id"]  # any id: refused before the store is read
    assert main(["runs", "list", "--sweep", sweep_id, "--columns", cols]) == 2
    assert "--columns applies to the runs listing" in capsys.readouterr().err
