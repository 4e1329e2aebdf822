"""Store URLs are opened by an injected opener: the core never imports the adapters."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
from tests.helpers import registry_with

from crucible_actors import Experiment, StageDef, open_runtime, stage
from crucible_actors._core.persistence import _persistence as _persist
from crucible_actors.errors import StoreUnavailable
from crucible_actors.store import MemoryStore, open_persistence

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from crucible_actors import Context


@stage("nothing")
async def nothing(ctx: Context, opts: object) -> Context:
    return ctx


async def test_an_opener_given_to_open_persistence_opens_the_url_and_closes_on_exit() -> None:
    log: list[str] = []
    store = MemoryStore("memory://given")

    @asynccontextmanager
    async def opener(url: str) -> AsyncIterator[MemoryStore]:
        log.append(f"open {url}")
        yield store
        log.append("close")

    async with open_persistence("memory://given", opener=opener) as persistence:
        assert persistence.store is store
        assert [o.id for o in await store.list_owners()] == [persistence.owner.id]
    assert log == ["open memory://given", "close"]


async def test_a_url_without_any_opener_fails_saying_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_persist, "_default_opener", None)
    with pytest.raises(StoreUnavailable, match="no store opener"):
        async with open_persistence("sqlite:///never.db"):
            pass


async def test_open_runtime_opens_a_store_url_with_the_default_opener() -> None:
    reg = registry_with(nothing)
    async with open_runtime(registry=reg, store="memory://") as rt:
        assert isinstance(rt.store, MemoryStore)
        handle = await rt.submit(Experiment(id="e", pipeline=(StageDef(name="nothing"),)))
        await handle.result()
        assert (await rt.store.get_run(handle.run_id)).status == "completed"
