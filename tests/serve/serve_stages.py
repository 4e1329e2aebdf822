"""Stages for the service tests, the served_app fixture and the dashboard's browser test.

Loaded in-process by ``conftest.py`` and, for ``crucible-actors serve`` subprocesses,
copied next to a ``crucible.toml`` that registers them (see :data:`CRUCIBLE_TOML`).
"""

from __future__ import annotations

from typing import Any

import anyio
import msgspec

from crucible_actors import Context, Stage

CRUCIBLE_TOML = """\
[stages]
echo = "serve_stages:Echo"
need = "serve_stages:Need"
fail = "serve_stages:Fail"
sleep = "serve_stages:Sleep"
write = "serve_stages:Write"
tally = "serve_stages:Tally"
await_file = "serve_stages:AwaitFile"
"""


class Echo(Stage):
    """Record the ``value`` option as the metric ``value``."""

    name = "echo"

    class Options(msgspec.Struct):
        value: int = 0

    async def run(self, ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("value", opts.value)


class Need(Stage):
    """A stage with a required option, to exercise option validation."""

    name = "need"

    class Options(msgspec.Struct):
        input: str
        count: int = 1

    async def run(self, ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("input", opts.input)


class Boom(RuntimeError):
    """What the ``fail`` stage raises."""


class Fail(Stage):
    """Always fail."""

    name = "fail"

    class Options(msgspec.Struct):
        message: str = "boom"

    async def run(self, ctx: Context, opts: Any) -> Context:
        raise Boom(opts.message)


class Sleep(Stage):
    """Sleep ``seconds`` (real time; for the subprocess, the bench and the dashboard)."""

    name = "sleep"

    class Options(msgspec.Struct):
        seconds: float = 0.05

    async def run(self, ctx: Context, opts: Any) -> Context:
        await anyio.sleep(opts.seconds)
        return ctx.put_metric("slept", opts.seconds)


class Write(Stage):
    """Write ``<run_id>.txt`` into ``dir`` (default: the working directory), as an artifact."""

    name = "write"

    class Options(msgspec.Struct):
        dir: str = "."
        text: str = "hello"

    async def run(self, ctx: Context, opts: Any) -> Context:
        path = await anyio.Path(opts.dir, f"{ctx.run_id}.txt").absolute()
        await path.write_text(opts.text)
        entry = {"name": "out", "type": "text", "format": "txt", "location": str(path)}
        return ctx.put_artifact("out", entry)


class Tally(Stage):
    """Append ``<run_id> <mark>`` to the file ``path`` each time it runs (counts executions)."""

    name = "tally"

    class Options(msgspec.Struct):
        path: str
        mark: str = ""

    async def run(self, ctx: Context, opts: Any) -> Context:
        async with await anyio.open_file(opts.path, "a") as f:
            await f.write(f"{ctx.run_id} {opts.mark}\n")
        return ctx.put_metric(f"tally_{opts.mark}", 1)


class AwaitFile(Stage):
    """Wait until the file ``path`` exists (a gate a test opens across processes)."""

    name = "await_file"

    class Options(msgspec.Struct):
        path: str

    async def run(self, ctx: Context, opts: Any) -> Context:
        # The test process creates the file: no in-process event can signal across.
        while not await anyio.Path(opts.path).exists():  # noqa: ASYNC110
            await anyio.sleep(0.02)
        return ctx


class Gate(Stage):
    """Wait until the test opens the gate (in-process only: holds loop-bound events)."""

    name = "gate"
    description = "Wait for the test"

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.opened = anyio.Event()

    def describe(self) -> dict[str, Any]:
        return {
            "name": "gate",
            "description": "Wait for the test",
            "required": [],
            "optional": [],
            "types": {},
        }

    async def run(self, ctx: Context, opts: Any) -> Context:
        self.entered.set()
        await self.opened.wait()
        return ctx
