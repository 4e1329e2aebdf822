"""Stages passing large arrays, run by the pool and Ray tests in worker processes."""

from __future__ import annotations

import os
from typing import Any

import crucible_actors as ca
from crucible_actors import Context

#: 5,000,000 float64 values: 40 MB, the issue's contract size.
N = 5_000_000


def big_array(seed: int = 0) -> Any:
    """Return the 40 MB array of the issue's contract."""
    import numpy as np

    return np.random.default_rng(seed).random((N,))


@ca.stage("make_array")
def make_array(ctx: Context, opts: Any) -> Context:
    """Assign ``X``, a 40 MB array (made where the stage runs: driver or worker)."""
    return ctx.assign("X", big_array(opts.get("seed", 0))).put_metric("made_in", os.getpid())


@ca.stage("read_array")
def read_array(ctx: Context, opts: Any) -> Context:
    """Record what arrived as ``X``: its type, sum, writeability and the reader's pid."""
    import numpy as np

    x = ctx.assigns["X"]
    assert isinstance(x, np.ndarray), type(x)
    try:
        x[0] = 1.0
        wrote = True
    except ValueError:
        wrote = False
    return (
        ctx.put_metric("sum", float(x.sum()))
        .put_metric("writeable", x.flags.writeable)
        .put_metric("wrote", wrote)
        .put_metric("pid", os.getpid())
        .put_metric("attempt", ctx.telemetry_context["attempt"])
    )


@ca.stage("read_array_then_exit_once")
def read_array_then_exit_once(ctx: Context, opts: Any) -> Context:
    """Read ``X`` and die on the first attempt; read it again on the next."""
    x = ctx.assigns["X"]
    total = float(x.sum())
    if ctx.telemetry_context["attempt"] == 1:
        os._exit(1)
    return ctx.put_metric("sum", total).put_metric("pid", os.getpid())


class ArrayReader(ca.Stage):
    """A stateful stage (its own worker or actor) that reads ``X`` like ``read_array``."""

    name = "array_reader"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": "d", "required": [], "optional": [], "types": {}}

    def setup(self) -> None:
        self.loaded = os.getpid()

    def run(self, ctx: Context, opts: Any) -> Context:
        return read_array(ctx, opts).put_metric("actor_pid", self.loaded)
