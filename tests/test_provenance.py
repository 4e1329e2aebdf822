"""Provenance: code fingerprints, the environment (git, packages), what a run records,
how two runs' provenance differ, and ``compare``'s warnings."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from tests.helpers import missing_extra, registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef
from crucible_actors._core import _provenance
from crucible_actors._core._fingerprint import code_fingerprint
from crucible_actors._core._provenance import (
    git_state,
    provenance_diff,
    provenance_view,
    provenance_warnings,
)
from crucible_actors.comparison import compare, render
from crucible_actors.store import EnvironmentRecord, ExperimentRecord, MemoryStore, RunRecord

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _define(source: str, name: str) -> Any:
    """Define ``name`` from ``source`` in a module file, as a user's stages module is."""
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "<fingerprint-test>", "exec"), namespace)
    return namespace[name]


def _module(tmp_path: Path, name: str, source: str) -> Any:
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BASE = """
import crucible_actors as ca

@ca.stage("score")
def score(ctx, opts):
    \"\"\"Score it.\"\"\"
    x = ctx.assigns["n"]  # the input
    return ctx.put_metric("score", x * 10)
"""


def test_a_fingerprint_ignores_comments_blank_lines_and_docstrings(tmp_path: Path) -> None:
    base = code_fingerprint(_module(tmp_path, "fp_a", BASE).score)
    cosmetic = BASE.replace("# the input", "# reworded").replace('"""Score it."""', '"""Doc."""')
    cosmetic = cosmetic.replace("    x = ctx", "\n    x   =   ctx")
    assert code_fingerprint(_module(tmp_path, "fp_b", cosmetic).score) == base
    assert len(base) == 32


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("x * 10", "x * 100"),
        ('"n"', '"m"'),
        ("put_metric", "assign"),
        ('stage("score")', 'stage("s2")'),
    ],
)
def test_a_fingerprint_changes_with_the_code(tmp_path: Path, old: str, new: str) -> None:
    base = code_fingerprint(_module(tmp_path, "fp_c", BASE).score)
    assert code_fingerprint(_module(tmp_path, "fp_d", BASE.replace(old, new)).score) != base


def test_a_class_stage_is_fingerprinted_by_its_whole_body(tmp_path: Path) -> None:
    source = """
    import crucible_actors as ca

    class Train(ca.Stage):
        name = "train"

        def describe(self):
            return {"name": "train", "description": "", "required": [], "optional": [], "types": {}}

        def run(self, ctx, opts):
            return ctx.put_metric("lr", self.rate())

        def rate(self):
            return 0.1
    """
    one = _module(tmp_path, "fp_e", source).Train
    two = _module(tmp_path, "fp_f", source.replace("return 0.1", "return 0.2")).Train
    assert code_fingerprint(one()) == code_fingerprint(one) != code_fingerprint(two())


def test_without_source_the_compiled_code_is_fingerprinted() -> None:
    one = _define("def score(ctx, opts):\n    return ctx.put_metric('s', 1)\n", "score")
    same = _define("def score(ctx, opts):\n    return ctx.put_metric('s', 1)\n", "score")
    other = _define("def score(ctx, opts):\n    return ctx.put_metric('s', 2)\n", "score")
    assert code_fingerprint(one) == code_fingerprint(same) != code_fingerprint(other)


def test_git_state_of_a_work_tree_outside_one_and_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_provenance, "_git", {})
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(str(plain)) is None
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "stages.py").write_text("x = 1\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    assert git_state(str(repo)) is None  # a repository without a commit has no HEAD
    subprocess.run([*git, "add", "stages.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=repo, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setattr(_provenance, "_git", {})
    (repo / "untracked.txt").write_text("not part of the tree\n")
    assert git_state(str(repo)) == {"commit": head, "dirty": False}
    monkeypatch.setattr(_provenance, "_git", {})
    (repo / "stages.py").write_text("x = 2\n")
    assert git_state(str(repo)) == {"commit": head, "dirty": True}


def test_a_missing_git_leaves_git_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_provenance, "_git", {})
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert git_state(str(tmp_path)) is None


def registry() -> Registry:
    @ca.stage("one")
    def one(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("one", 1)

    return registry_with(one)


async def test_a_failing_provenance_never_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(targets: Any) -> Any:
        raise OSError("metadata unreadable")

    monkeypatch.setattr(_provenance, "environment_of", broken)
    store = MemoryStore()
    async with ca.open_runtime(registry=registry(), store=store) as rt:
        handle = await rt.submit(Experiment(id="p", pipeline=[StageDef(name="one")]))
        ctx = await handle.result()
    assert ctx.metrics == {"one": 1}
    run = await store.get_run(handle.run_id)
    assert run.status == "completed"
    assert run.provenance is None


class NoEnvironments(MemoryStore):
    """A host's own store without the optional environment methods."""

    put_environment = None  # type: ignore[assignment]
    get_environment = None  # type: ignore[assignment]


async def test_a_store_without_environments_keeps_the_runs_part() -> None:
    store = NoEnvironments()
    async with ca.open_runtime(registry=registry(), store=store) as rt:
        handle = await rt.submit(Experiment(id="p", pipeline=[StageDef(name="one")]))
        await handle.wait()
    prov = (await store.get_run(handle.run_id)).provenance
    assert prov is not None
    assert set(prov["stages"]) == {"one"}
    view = provenance_view(prov, None)
    assert view is not None
    assert view["python"] is None
    assert view["packages"] == {}
    assert view["stages"] == prov["stages"]


def view(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "environment": "e1",
        "python": "3.12.1",
        "crucible_actors": "0.1.0",
        "platform": "Linux",
        "host": "h1",
        "packages": {"numpy": "2.0.0", "scikit-learn": "1.5.0"},
        "git": {"commit": "abc", "dirty": False},
        "stages": {"load": "f1", "cv_eval": "f2"},
        "inputs": {"assigns['X']": "d1"},
    }
    return {**base, **changes}


def test_provenance_diff_names_each_difference() -> None:
    a = view()
    b = view(
        packages={"numpy": "2.1.0", "scikit-learn": "1.5.0", "scipy": "1.14.0"},
        git={"commit": "def", "dirty": True},
        stages={"load": "f1", "cv_eval": "f3"},
        inputs={"assigns['X']": "d2"},
    )
    assert provenance_diff(a, b) == {
        "code": [("cv_eval", "f2", "f3")],
        "environment": [("git.commit", "abc", "def"), ("git.dirty", False, True)],
        "packages": [("numpy", "2.0.0", "2.1.0"), ("scipy", None, "1.14.0")],
        "inputs": [("assigns['X']", "d1", "d2")],
    }
    assert provenance_diff(a, a) == {"code": [], "environment": [], "packages": [], "inputs": []}
    assert provenance_diff(a, None)["code"] == []


def test_warnings_one_line_per_kind_of_difference() -> None:
    assert provenance_warnings({"r1": view(), "r2": view(), "r3": None}) == []
    lines = provenance_warnings(
        {
            "r1": view(),
            "r2": view(stages={"load": "f1", "cv_eval": "f9"}),
            "r3": view(packages={"numpy": "2.1.0", "scikit-learn": "1.5.0"}, host="h2"),
            "r4": view(inputs={"assigns['X']": "d2"}),
        }
    )
    assert lines == [
        "runs differ from r1 in code: stage 'cv_eval' (r2)",
        "runs differ from r1 in environment: 'host' (r3), package 'numpy' (r3)",
        "runs differ from r1 in input data: \"assigns['X']\" (r4)",
    ]


async def _stored_run(
    store: MemoryStore, run_id: str, stages: dict[str, str], env_id: str, numpy: str
) -> None:
    await store.put_environment(
        EnvironmentRecord(
            id=env_id,
            record={**view(), "packages": {"numpy": numpy}},
            created_at=T0,
        )
    )
    exp = ExperimentRecord(
        id="e", definition={"id": "e"}, created_at=T0, updated_at=T0, tags=[], metadata={}
    )
    prov = {"environment": env_id, "stages": stages}
    run = RunRecord(id=run_id, experiment_id="e", status="running", started_at=T0, provenance=prov)
    await store.start_run(run, experiment=exp)
    scores = [{"id": i, "score": (i % 5) / 5 + (0.1 if run_id == "b" else 0)} for i in range(30)]
    done = RunRecord(
        id=run_id,
        experiment_id="e",
        status="completed",
        outputs=scores,
        started_at=T0,
        finished_at=T0,
    )
    await store.finish_run(done, artifacts=[], events=[])


async def test_compare_warns_when_the_runs_differ_in_code_or_environment() -> None:
    pytest.importorskip("scipy", reason=missing_extra("bench"))
    store = MemoryStore()
    await _stored_run(store, "a", {"score": "f1"}, "env1", "2.0.0")
    await _stored_run(store, "b", {"score": "f2"}, "env2", "2.1.0")
    result = await compare(store, ["a", "b"], bootstrap_iterations=200)
    assert result.warnings == [
        "runs differ from a in code: stage 'score' (b)",
        "runs differ from a in environment: package 'numpy' (b)",
    ]
    text = render(result, "table")
    assert "warning: runs differ from a in code: stage 'score' (b)" in text
    assert "warning: runs differ from a in environment: package 'numpy' (b)" in text
    same = MemoryStore()
    await _stored_run(same, "a", {"score": "f1"}, "env1", "2.0.0")
    await _stored_run(same, "b", {"score": "f1"}, "env1", "2.0.0")
    quiet = await compare(same, ["a", "b"], bootstrap_iterations=200)
    assert quiet.warnings == []
    assert "warning:" not in render(quiet, "table")


def test_the_environment_lists_the_stages_installed_distributions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stage from an installed package (numpy's module stands in): its distribution and
    # crucible-actors are recorded; a stage module outside site-packages is not a package.
    import numpy

    key = _provenance._environment_key([numpy.add])
    assert "numpy" in key[1]
    env_id, record = _provenance._build(key)
    assert record["packages"]["numpy"] == numpy.__version__
    assert "crucible-actors" in record["packages"]
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    assert len(env_id) == 32
    assert _provenance._build(key)[0] == env_id  # the id is a digest of the content


class KOptions(msgspec.Struct, frozen=True):
    """A swept option."""

    k: int = 0


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
async def test_every_sweep_point_records_its_provenance(tmp_path: Path, url: str) -> None:
    # Sweep points start from rows written pending with their sweep: starting one must
    # record its provenance as a plain run's start does.
    from crucible_actors.store import open_store

    target = f"sqlite:///{tmp_path}/s.db" if url == "sqlite" else url
    exp = Experiment(id="sw", pipeline=[StageDef(name="one")], sweep={"one.k": [1, 2, 3]})

    @ca.stage("one", options=KOptions)
    def one(ctx: Context, opts: KOptions) -> Context:
        return ctx.put_metric("one", 1)

    reg = registry_with(one)
    async with open_store(target) as store:
        async with ca.open_runtime(registry=reg, store=store) as rt:
            handle = await rt.submit_sweep(exp)
            assert await handle.wait() == {"completed": 3}
        runs = [r for r in await store.list_runs(limit=10) if r.experiment_id.startswith("sw")]
        assert len(runs) == 3
        for run in runs:
            assert run.provenance is not None, run.id
            assert set(run.provenance["stages"]) == {"one"}
            assert run.provenance["environment"]
