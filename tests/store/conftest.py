"""Store fixtures: one ``store`` fixture over memory, SQLite and PostgreSQL.

PostgreSQL tests use ``CRUCIBLE_TEST_POSTGRES_URL``, else the local server at
``postgresql://postgres@127.0.0.1:5432/test``; when no server answers they are skipped
with that reason. Each test gets its own schema (``search_path`` set through the URL's
``options``), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from tests.helpers import missing_extra

from crucible_actors.store import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from crucible_actors.store import Store

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """Return the URL of a PostgreSQL server that answers, or skip."""
    url = os.environ.get("CRUCIBLE_TEST_POSTGRES_URL") or DEFAULT_PG_URL
    psycopg = pytest.importorskip("psycopg", reason=missing_extra("postgres"))
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server at {url}: {exc}".strip())
    return url


def with_search_path(url: str, schema: str) -> str:
    """Return ``url`` with ``options=-c search_path=<schema>`` added."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-c search_path={schema}')}"


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """Return a URL whose connections use a fresh, empty schema (dropped afterwards)."""
    import psycopg

    schema = f"crucible_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(pg_server_url, schema)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


STORE_KINDS = [
    "memory",
    "sqlite",
    "sqlite-memory",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of an empty store of each kind."""
    kind: str = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/crucible.db"
    if kind == "sqlite-memory":
        return "sqlite://:memory:"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store that several store objects and processes can open: a
    SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """Yield an open, migrated, empty store of each kind."""
    async with open_store(store_url, migrate=True) as opened:
        yield opened
