"""Node loss: a two-node local Ray cluster (``ray.cluster_utils.Cluster``) loses the node
running an attempt; the attempt is a crash, retried by policy on the other node.

The head node has no CPUs (it only runs Ray's services), so attempts run on the two worker
nodes; the stage reports the node it runs on, and the test kills that node mid-attempt.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import missing_extra, registry_with

pytest.importorskip("ray", reason=missing_extra("ray"))

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef

from .conftest import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow


@ca.stage("on_node")
def on_node(ctx: Context, opts: Any) -> Context:
    import ray

    node = ray.get_runtime_context().get_node_id()
    attempt = ctx.telemetry_context["attempt"]
    path = Path(opts["dir"], f"attempt{attempt}.node")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node)
    os.replace(tmp, path)
    if attempt == 1:
        time.sleep(120)  # until its node is killed
    return ctx.put_metric("node", node)


@pytest.fixture
def cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()  # the session's local Ray; ray_local starts it again when asked
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1)
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


async def test_a_node_killed_mid_attempt_is_a_crash_retried_on_the_other_node(
    cluster: Any, tmp_path: Path
) -> None:
    reg = registry_with(on_node)
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(
                name="on_node",
                isolation="ray",
                restart="transient",
                retry_on=["WorkerCrashed"],
                options={"dir": str(tmp_path)},
            )
        ],
    )
    first = tmp_path / "attempt1.node"
    async with ca.open_runtime(registry=reg, ray_address=cluster.address) as rt:
        handle = await rt.submit(exp)
        await wait_until(first.exists, within=60)
        doomed = first.read_text()
        victim = next(n for n in cluster.worker_nodes if n.node_id == doomed)
        cluster.remove_node(victim)
        ctx = await handle.result()
    assert [a.status for a in handle.attempts] == ["failed", "completed"]
    assert "WorkerCrashed" in (handle.attempts[0].error or "")
    assert ctx.get_metric("node") != doomed
    assert ctx.get_metric("node") in {n.node_id for n in cluster.worker_nodes}


def test_cli_run_sends_ray_stages_to_the_cluster_given_by_ray_address(
    cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from crucible_actors.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "cluster_stages.py").write_text(
        "import crucible_actors as ca\n"
        "@ca.stage('node')\n"
        "def node(ctx, opts):\n"
        "    import ray\n"
        "    return ctx.put_metric('node', ray.get_runtime_context().get_node_id())\n"
    )
    exp = tmp_path / "exp.toml"
    exp.write_text(
        'id = "remote"\n[[pipeline]]\nstage = "cluster_stages:node"\nisolation = "ray"\n'
    )
    code = main(["run", str(exp), "--no-persist", "--json", "--ray-address", cluster.address])
    out = capsys.readouterr().out
    assert code == 0, out
    node = json.loads(out)["metrics"]["node"]
    assert node in {n.node_id for n in cluster.worker_nodes}
