"""Issue 22's space contract: a 40 MB array run twice, both runs deleted, ``gc``: DIR < 5 MB."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import missing_extra, registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef, stage
from crucible_actors.cli import main

if TYPE_CHECKING:
    from pathlib import Path

np = pytest.importorskip("numpy", reason=missing_extra("dev"))

MB = 1_000_000
ARRAY_BYTES = 5_000_000 * 8


@stage("make_array")
def make_array(ctx: Context, opts: Any) -> Context:
    return ctx.assign("X", np.random.default_rng(0).random((5_000_000,)))


@stage("read_array")
def read_array(ctx: Context, opts: Any) -> Context:
    x = ctx.assigns["X"]
    assert isinstance(x, np.ndarray)
    return ctx.put_metric("mean", float(x.mean()))


def directory_bytes(root: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(where, name))
        for where, _, names in os.walk(root)
        for name in names
    )


def run_once(url: str, run_id: str) -> Context:
    registry = registry_with(make_array, read_array)
    experiment = Experiment(
        id="array",
        pipeline=[StageDef(name="make_array"), *(StageDef(name="read_array") for _ in range(4))],
    )
    return ca.run(experiment, registry=registry, store=url, run_id=run_id)


@pytest.mark.slow
def test_deleting_both_runs_and_gc_leave_the_directory_under_5_mb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    data = tmp_path / "DIR"
    url = f"sqlite:///{data}/x.db"
    ctx = run_once(url, "first")
    x = ctx.assigns["X"]
    assert isinstance(x, np.ndarray)
    assert x.flags.writeable is False
    run_once(url, "second")
    assert ARRAY_BYTES <= directory_bytes(data) <= 1.25 * ARRAY_BYTES + 2 * MB

    # The array's blob is shared: deleting one run frees nothing of it.
    assert main(["runs", "delete", "first", "--store", url]) == 0
    assert main(["gc", "--store", url]) == 0
    assert directory_bytes(data) >= ARRAY_BYTES
    capsys.readouterr()

    assert main(["runs", "delete", "second", "--store", url]) == 0
    assert main(["gc", "--store", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("freed 4")
    assert ": 1 blob (40.0 MB), 0 cached results (0 B); store " in out[-1]
    assert directory_bytes(data) < 5 * MB
