"""The PostgreSQL blob store: chunked rows, a verified local cache, ``?blobs=DIR``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.helpers import missing_extra, registry_with

from crucible_actors._core.persistence._blobs import digest_of
from crucible_actors.errors import BlobCorrupt, BlobMissing, StoreUnavailable
from crucible_actors.store import _pg_blobs, open_store
from crucible_actors.store._blobs import DirectoryBlobStore, open_blob_store
from crucible_actors.store._pg_blobs import PostgresBlobStore, blob_options

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _digest(data: bytes) -> str:
    return digest_of([data])


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make chunks 1000 bytes, so small blobs span several rows."""
    monkeypatch.setattr(_pg_blobs, "CHUNK_SIZE", 1000)
    return 1000


@pytest.fixture
def migrated(pg_url: str) -> str:
    """Return ``pg_url`` after applying the migrations to its schema."""
    import psycopg

    from crucible_actors.store._postgres import migrate_postgres

    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate_postgres(conn, "test")
    return pg_url


@pytest.fixture
def blobs(migrated: str, tmp_path: Path) -> Iterator[PostgresBlobStore]:
    store = PostgresBlobStore(migrated, cache_dir=tmp_path / "cache")
    yield store
    store.close()


def _rows(url: str, digest: str) -> list[int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT length(data) FROM blob_chunks WHERE digest = %s ORDER BY seq", (digest,)
        ).fetchall()
    return [r[0] for r in rows]


def test_a_blob_is_split_into_chunks_and_read_back_by_another_process_cache(
    blobs: PostgresBlobStore, migrated: str, tmp_path: Path, small_chunks: int
) -> None:
    data = bytes(range(256)) * 10  # 2560 bytes
    digest = _digest(data)
    # Uneven pieces: the store re-cuts them into whole chunks.
    assert blobs.put(digest, [data[:700], memoryview(data)[700:]], len(data)) is True
    assert _rows(migrated, digest) == [1000, 1000, 560]
    assert blobs.exists(digest)
    assert not blobs.exists(_digest(b"other"))

    # A reader with an empty cache fetches from the database, then maps its cache file.
    reader = PostgresBlobStore(migrated, cache_dir=tmp_path / "elsewhere")
    try:
        view = reader.open(digest)
        assert bytes(view) == data
        assert view.readonly
        assert (tmp_path / "elsewhere" / digest[:2] / digest).read_bytes() == data
    finally:
        reader.close()


def test_putting_existing_content_again_only_touches_it(blobs: PostgresBlobStore) -> None:
    data = b"x" * 5000
    digest = _digest(data)
    assert blobs.put(digest, [data], len(data)) is True
    (before,) = list(blobs.list())
    assert blobs.put(digest, [data], len(data)) is False
    (after,) = list(blobs.list())
    assert (after.digest, after.size) == (digest, 5000)
    assert after.mtime >= before.mtime


def test_touch_refreshes_touched_at(blobs: PostgresBlobStore, migrated: str) -> None:
    import psycopg

    data = b"t" * 5000
    digest = _digest(data)
    assert blobs.touch(digest) is False
    blobs.put(digest, [data], len(data))
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(
            "UPDATE blobs SET touched_at = now() - interval '1 hour' WHERE digest = %s",
            (digest,),
        )
    (before,) = list(blobs.list())
    assert blobs.touch(digest) is True
    (after,) = list(blobs.list())
    assert after.mtime > before.mtime + 3000


def test_concurrent_puts_of_one_blob_store_it_once(
    blobs: PostgresBlobStore, migrated: str, small_chunks: int
) -> None:
    data = b"y" * 4500
    digest = _digest(data)
    results: list[bool] = []
    stores = [PostgresBlobStore(migrated, cache_dir=blobs.cache_dir) for _ in range(4)]

    def put(store: PostgresBlobStore) -> None:
        results.append(store.put(digest, [data], len(data)))

    threads = [threading.Thread(target=put, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sorted(results) == [False, False, False, True]
    assert _rows(migrated, digest) == [1000] * 4 + [500]


def test_the_location_reopens_the_store_in_another_process(
    blobs: PostgresBlobStore, tmp_path: Path
) -> None:
    data = b"z" * 3000
    digest = _digest(data)
    blobs.put(digest, [data], len(data))
    location = blobs.location()
    assert location.startswith("postgresql://")
    assert f"blob_cache={tmp_path}" in location.replace("%2F", "/")
    reopened = PostgresBlobStore.from_location(location)
    try:
        assert reopened.cache_dir == blobs.cache_dir
        assert bytes(reopened.open(digest)) == data
    finally:
        reopened.close()


def test_a_damaged_cache_file_is_fetched_again(
    blobs: PostgresBlobStore, migrated: str, tmp_path: Path
) -> None:
    data = b"q" * 2000
    digest = _digest(data)
    blobs.put(digest, [data], len(data))
    cached = blobs.cache_dir / digest[:2] / digest
    cached.write_bytes(b"q" * 1000)  # torn
    reader = PostgresBlobStore(migrated, cache_dir=blobs.cache_dir)
    try:
        assert bytes(reader.open(digest)) == data
        assert cached.read_bytes() == data
    finally:
        reader.close()


def test_a_damaged_database_copy_raises_blob_corrupt(
    blobs: PostgresBlobStore, migrated: str, tmp_path: Path
) -> None:
    import psycopg

    data = b"w" * 2000
    digest = _digest(data)
    blobs.put(digest, [data], len(data))
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("UPDATE blob_chunks SET data = %s WHERE digest = %s", (b"v" * 2000, digest))
    reader = PostgresBlobStore(migrated, cache_dir=tmp_path / "fresh")
    try:
        with pytest.raises(BlobCorrupt, match="does not match its digest") as info:
            reader.open(digest)
        assert info.value.digest == digest
        assert not (tmp_path / "fresh" / digest[:2] / digest).exists()
    finally:
        reader.close()


def test_delete_frees_the_rows_and_the_cached_file(blobs: PostgresBlobStore, migrated: str) -> None:
    data = b"d" * 1234
    digest = _digest(data)
    blobs.put(digest, [data], len(data))
    assert blobs.delete(digest) == 1234
    assert blobs.delete(digest) == 0
    assert _rows(migrated, digest) == []
    assert list(blobs.list()) == []
    assert not (blobs.cache_dir / digest[:2] / digest).exists()
    with pytest.raises(BlobMissing, match="missing from the blob store") as info:
        blobs.open(digest)
    assert info.value.digest == digest


def test_an_empty_blob_round_trips(blobs: PostgresBlobStore, migrated: str, tmp_path: Path) -> None:
    digest = _digest(b"")
    assert blobs.put(digest, [], 0) is True
    assert _rows(migrated, digest) == [0]
    reader = PostgresBlobStore(migrated, cache_dir=tmp_path / "other")
    try:
        assert bytes(reader.open(digest)) == b""
    finally:
        reader.close()


def test_blob_url_options_are_taken_out_of_the_libpq_url() -> None:
    url, blobs_dir, cache = blob_options(
        "postgresql://u:pw@h/db?options=-c%20x%3D1&blobs=/shared/b&blob_cache=/tmp/c"
    )
    assert url == "postgresql://u:pw@h/db?options=-c%20x%3D1"
    assert blobs_dir == "/shared/b"
    assert str(cache) == "/tmp/c"
    assert blob_options("postgresql://h/db") == ("postgresql://h/db", None, None)
    with pytest.raises(StoreUnavailable, match=r"blobs= needs an absolute directory"):
        blob_options("postgresql://u:secret@h/db?blobs=relative")


async def test_the_store_keeps_its_blobs_in_the_database(pg_url: str, tmp_path: Path) -> None:
    url = f"{pg_url}&blob_cache={tmp_path}/cache"
    async with open_store(url, migrate=True) as store:
        assert isinstance(store.blobs, PostgresBlobStore)
        data = b"a" * 100
        digest = _digest(data)
        assert store.blobs.put(digest, [data], len(data))
        assert (tmp_path / "cache" / digest[:2] / digest).is_file()
        assert [b.digest for b in store.blobs.list()] == [digest]


async def test_blobs_option_puts_them_in_a_shared_directory(pg_url: str, tmp_path: Path) -> None:
    async with open_store(f"{pg_url}&blobs={tmp_path}/shared", migrate=True) as store:
        assert isinstance(store.blobs, DirectoryBlobStore)
        assert store.blobs.location() == f"file://{tmp_path}/shared?durability=power"
        data = b"b" * 100
        digest = _digest(data)
        store.blobs.put(digest, [data], len(data))
        assert bytes(open_blob_store(store.blobs.location()).open(digest)) == data


@pytest.mark.slow
async def test_a_pool_worker_reads_the_array_through_its_own_cache(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker reopens the store from its location: the database URL and the cache.
    np = pytest.importorskip("numpy", reason=missing_extra("dev"))
    import crucible_actors as ca
    from crucible_actors import Experiment, StageDef
    from crucible_actors.executors import PoolExecutor

    monkeypatch.syspath_prepend(str(ROOT))
    from tests.executors import data_stages

    reg = registry_with(data_stages.make_array, data_stages.read_array)
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="make_array"), StageDef(name="read_array", isolation="process")],
    )
    async with open_store(f"{pg_url}&blob_cache={tmp_path}/cache", migrate=True) as store:
        async with ca.open_runtime(registry=reg, store=store, process_workers=1) as rt:
            ctx = await (await rt.submit(exp)).result()
            pool = rt.executors["process"]
            assert isinstance(pool, PoolExecutor)
            sent = pool.statistics().bytes_sent
        (blob,) = list(store.blobs.list())
    expected = data_stages.big_array()
    assert ctx.get_metric("sum") == float(expected.sum())
    assert ctx.get_metric("writeable") is False
    assert np.array_equal(ctx.assigns["X"], expected)
    assert sent < 64 * 1024
    assert 40_000_000 < blob.size < 40_100_000


def test_a_name_that_is_not_a_digest_never_reaches_the_cache_directory(
    blobs: PostgresBlobStore, tmp_path: Path
) -> None:
    for name in ("../../etc/passwd", "ab" * 32):  # a path, and a sha256-length name
        with pytest.raises(ValueError, match="not a blob digest"):
            blobs.open(name)
    assert not (tmp_path / "etc").exists()
