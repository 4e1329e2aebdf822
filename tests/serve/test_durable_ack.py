"""A 202 is only sent for a run whose row is committed; a store that refuses it gets a 503.

The row is read through a second connection to the SQLite file (what another process,
or this one restarted after a crash, would see) the moment the 202 arrives, before the
run's task has had a turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from crucible_actors.errors import StoreUnavailable
from crucible_actors.store import MemoryStore, open_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from .conftest import Served


async def test_a_202_names_a_run_already_committed_to_the_store(
    serve: Callable[..., AbstractAsyncContextManager[Served]], tmp_path: Path
) -> None:
    async with serve(store="sqlite") as served:
        response = await served.submit("gate", "echo")
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        async with open_store(f"sqlite:///{tmp_path / 'serve.db'}") as reader:
            assert (await reader.get_run(run_id)).status == "running"
        served.gate.opened.set()
        await served.wait(run_id)


class SlowStart(MemoryStore):
    """A MemoryStore whose run rows commit only once ``commit`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = anyio.Event()
        self.commit = anyio.Event()

    async def start_run(self, run: Any, **kw: Any) -> None:
        self.writing.set()
        await self.commit.wait()
        await super().start_run(run, **kw)


async def test_the_202_waits_for_the_run_row_to_commit(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    store = SlowStart()
    answers: list[Any] = []
    async with serve(store=store) as served:

        async def post() -> None:
            answers.append(await served.submit("echo"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(post)
            await store.writing.wait()
            await anyio.wait_all_tasks_blocked()
            assert answers == []  # no 202 while the row is not committed
            store.commit.set()
        assert answers[0].status_code == 202
        run_id = answers[0].json()["run_id"]
        await served.wait(run_id)
        assert (await store.get_run(run_id)).status == "completed"


class RefusingStore(MemoryStore):
    """A MemoryStore that refuses to record new runs."""

    async def start_run(self, run: Any, **kw: Any) -> None:
        raise StoreUnavailable("the disk is full (injected)", store=self.name)


async def test_a_run_the_store_refuses_gets_a_503_and_never_runs(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store=RefusingStore()) as served:
        response = await served.submit("echo")
        assert response.status_code == 503, response.text
        assert response.json()["error"]["type"] == "StoreUnavailable"
        assert served.runtime.runs() == []
        assert served.runtime.statistics().submitted == 0
