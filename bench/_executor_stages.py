"""Stages for bench/executors.py, importable by worker processes (pool and Ray)."""

from __future__ import annotations

from typing import Any

import crucible_actors as ca
from crucible_actors import Context


@ca.stage("noop")
async def noop(ctx: Context, opts: Any) -> Context:
    return ctx


class Loaded(ca.Stage):
    """A no-op stateful stage: ``setup`` 'loads' once per worker."""

    name = "loaded"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": "d", "required": [], "optional": [], "types": {}}

    def setup(self) -> None:
        self.model = object()

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx


def echo(payload: bytes) -> bytes:
    """The bare baselines' remote work: hand the bytes back."""
    return payload


class Echo:
    """The bare actor baseline."""

    def echo(self, payload: bytes) -> bytes:
        return payload


@ca.stage("make_data")
def make_data(ctx: Context, opts: Any) -> Context:
    """Assign ``X``: ``opts['mb']`` MB of float64 (1 GB in the data bench), made here."""
    import time

    import numpy as np

    x = np.arange(int(opts["mb"]) * 131072, dtype=np.float64) if opts["mb"] else None
    return ctx.assign("X", x).put_metric("stamps", [time.monotonic()])


@ca.stage("stamp")
def stamp(ctx: Context, opts: Any) -> Context:
    """Append this attempt's start time (CLOCK_MONOTONIC, the same in every process)."""
    import time

    x = ctx.assigns.get("X")
    seen = 0.0 if x is None else float(x[-1])  # touch the data: it must be there
    stamps = [*ctx.get_metric("stamps", []), time.monotonic()]
    return ctx.put_metric("stamps", stamps).put_metric("seen", seen)
