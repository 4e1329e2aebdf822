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
