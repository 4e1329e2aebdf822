"""Stages the executor tests run in worker processes (imported there by reference)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import crucible_actors as ca
from crucible_actors import Context


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader never sees the file half written."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@ca.stage("exit_once")
def exit_once(ctx: Context, opts: Any) -> Context:
    """Die with ``os._exit(1)`` on the first attempt; succeed on the next."""
    if ctx.telemetry_context["attempt"] == 1:
        os._exit(1)
    return ctx.put_metric("pid", os.getpid())


@ca.stage("hang_once")
def hang_once(ctx: Context, opts: Any) -> Context:
    """Write the worker's pid to ``opts['dir']``, then hang on the first attempt."""
    attempt = ctx.telemetry_context["attempt"]
    write_atomically(Path(opts["dir"], f"attempt{attempt}.pid"), str(os.getpid()))
    if attempt == 1:
        time.sleep(opts.get("seconds", 60))
    return ctx.put_metric("pid", os.getpid())


@ca.stage("pid")
async def pid(ctx: Context, opts: Any) -> Context:
    return ctx.put_metric("pid", os.getpid())


class Model(ca.Stage):
    """A stateful stage: ``setup`` 'loads a model' once per worker, every attempt uses it."""

    name = "model"
    description = "scores with a model loaded in setup()"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "required": ["dir"],
            "optional": [],
            "types": {"dir": "string"},
        }

    def setup(self) -> None:
        self.weights = {"loaded_by": os.getpid(), "token": uuid.uuid4().hex}
        self.dir = os.environ.get("CRUCIBLE_TEST_DIR", "")
        self._log("setup")

    def teardown(self) -> None:
        self._log("teardown")

    def _log(self, what: str) -> None:
        if self.dir:
            with open(Path(self.dir, "lifecycle.log"), "a") as f:
                f.write(f"{what} {os.getpid()}\n")

    def run(self, ctx: Context, opts: Any) -> Context:
        scored = ctx.get_metric("scored", 0) + 1
        return (
            ctx.put_metric("loaded_by", self.weights["loaded_by"])
            .put_metric("token", self.weights["token"])
            .put_metric("pid", os.getpid())
            .put_metric("scored", scored)
        )


class FlakySetup(ca.Stage):
    """A stateful stage whose setup fails in the first worker that tries it."""

    name = "flaky_setup"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": "d", "required": [], "optional": [], "types": {}}

    def setup(self) -> None:
        marker = Path(os.environ["CRUCIBLE_TEST_DIR"], "setup_failed_once")
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            raise RuntimeError("could not load the model")
        self.ready_in = os.getpid()

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("ready_in", self.ready_in)
