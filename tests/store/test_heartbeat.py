"""The owner heartbeat, on virtual time: it beats every interval and stops with the runtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from trio.testing import MockClock

from crucible_actors import Registry, open_runtime
from crucible_actors.store import MemoryStore, open_persistence

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def virtual_now() -> datetime:
    return T0 + timedelta(seconds=anyio.current_time())


def heartbeat_tasks() -> list[str]:
    return [t.name for t in anyio.get_running_tasks() if t.name == "crucible heartbeat"]


async def test_heartbeat_beats_every_interval_and_stops_on_close() -> None:
    store = MemoryStore()
    async with (
        open_persistence(store, now=virtual_now, heartbeat_interval=10.0) as p,
        open_runtime(store=p, registry=Registry()),
    ):
        (owner,) = await store.list_owners()
        assert owner.id == p.owner.id
        assert owner.heartbeat_at == T0
        await anyio.sleep(25)
        (owner,) = await store.list_owners()
        assert owner.heartbeat_at == T0 + timedelta(seconds=20)
        assert heartbeat_tasks() == ["crucible heartbeat"]
    assert heartbeat_tasks() == []
    assert await store.list_owners() == []
    await anyio.sleep(100)  # nothing beats any more: the owner row stays gone
    assert await store.list_owners() == []


async def test_heartbeat_registers_again_when_its_row_was_removed() -> None:
    store = MemoryStore()
    async with open_persistence(store, now=virtual_now, heartbeat_interval=10.0) as p:
        await store.remove_owner(p.owner.id)
        await anyio.sleep(11)
        (owner,) = await store.list_owners()
        assert owner.id == p.owner.id
        assert owner.heartbeat_at == T0 + timedelta(seconds=10)
