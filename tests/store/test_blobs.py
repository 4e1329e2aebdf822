"""The blob store port: the memory and directory blob stores pass one contract.

The directory store writes atomically (temp file + rename), maps blobs read-only, checks
each blob against its digest on first read, and reopens from its ``location()``.
"""

from __future__ import annotations

import gc
import os
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from crucible_actors._core.persistence._blobs import (
    DIGEST_LENGTH,
    BlobStore,
    MemoryBlobStore,
    digest_of,
    is_digest,
    new_hasher,
)
from crucible_actors.errors import BlobCorrupt, BlobMissing, StoreError
from crucible_actors.store import open_store
from crucible_actors.store._blobs import DirectoryBlobStore, open_blob_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def digest(data: bytes) -> str:
    return digest_of([data])


@pytest.fixture(params=["memory", "directory", "directory-power"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "memory":
        yield MemoryBlobStore()
    else:
        durability = "power" if request.param.endswith("power") else "process"
        yield DirectoryBlobStore(tmp_path / "blobs", durability=durability)


def test_put_open_exists_list_delete(blobs: BlobStore) -> None:
    data = b"hello " * 1000
    d = digest(data)
    assert not blobs.exists(d)
    assert blobs.put(d, [data[:10], memoryview(data)[10:]], len(data)) is True
    assert blobs.exists(d)
    view = blobs.open(d)
    assert bytes(view) == data
    assert view.readonly
    (info,) = list(blobs.list())
    assert (info.digest, info.size) == (d, len(data))
    assert blobs.delete(d) == len(data)
    assert blobs.delete(d) == 0
    assert not blobs.exists(d)
    assert list(blobs.list()) == []


def test_putting_existing_content_again_only_touches_it(blobs: BlobStore) -> None:
    data = b"x" * 100
    d = digest(data)
    assert blobs.put(d, [data], len(data)) is True
    if isinstance(blobs, DirectoryBlobStore):  # age it, as a collector would see it
        os.utime(blobs.root / d[:2] / d, (1_000_000, 1_000_000))
    (first,) = list(blobs.list())
    assert blobs.put(d, [data], len(data)) is False
    (second,) = list(blobs.list())
    assert second.mtime >= first.mtime
    if isinstance(blobs, DirectoryBlobStore):
        assert second.mtime > 1_000_000
    assert len(list(blobs.list())) == 1


def test_touch_refreshes_a_blob_and_reports_an_absent_one(blobs: BlobStore) -> None:
    data = b"t" * 100
    d = digest(data)
    assert blobs.touch(d) is False
    blobs.put(d, [data], len(data))
    if isinstance(blobs, DirectoryBlobStore):
        os.utime(blobs.root / d[:2] / d, (1_000_000, 1_000_000))
    else:
        assert isinstance(blobs, MemoryBlobStore)
        blobs._blobs[d] = (data, 1_000_000.0)
    assert blobs.touch(d) is True
    (info,) = list(blobs.list())
    assert info.mtime > 1_000_000
    assert bytes(blobs.open(d)) == data


def test_listing_partly_leaves_no_directory_open(tmp_path: Path) -> None:
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    for i in range(3):
        data = b"%d" % i * 10
        blobs.put(digest(data), [data], len(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listing = blobs.list()
        next(listing)
        listing.close()  # stopped early: the scandir iterator is closed, not leaked
        del listing
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_put_racing_a_delete_writes_the_blob_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    data = b"r" * 100
    d = digest(data)
    blobs.put(d, [data], len(data))
    real_utime = os.utime

    def deleted_first(path: Any, *args: Any, **kw: Any) -> None:
        blobs.delete(d)  # a collector unlinks it between the check and the touch
        real_utime(path, *args, **kw)

    monkeypatch.setattr(os, "utime", deleted_first)
    assert blobs.put(d, [data], len(data)) is True
    monkeypatch.setattr(os, "utime", real_utime)
    assert bytes(blobs.open(d)) == data


def test_opening_a_missing_blob_raises_blob_missing(blobs: BlobStore) -> None:
    d = digest(b"absent")
    with pytest.raises(BlobMissing) as info:
        blobs.open(d)
    assert info.value.digest == d
    assert isinstance(info.value, StoreError)
    assert d[:16] in str(info.value)


def test_a_directory_blob_altered_on_disk_raises_blob_corrupt_on_first_read(
    tmp_path: Path,
) -> None:
    data = b"payload" * 100
    d = digest(data)
    DirectoryBlobStore(tmp_path / "b").put(d, [data], len(data))
    path = tmp_path / "b" / d[:2] / d
    path.write_bytes(data[:-1] + b"!")
    with pytest.raises(BlobCorrupt) as info:
        DirectoryBlobStore(tmp_path / "b").open(d)  # a fresh process's view of the store
    assert info.value.digest == d
    assert "does not match its digest" in str(info.value)


def test_a_memory_blob_altered_raises_blob_corrupt() -> None:
    store = MemoryBlobStore()
    data = b"abc" * 10
    d = digest(data)
    store.put(d, [data], len(data))
    store.corrupt(d, b"other")
    with pytest.raises(BlobCorrupt):
        store.open(d)


def test_directory_writes_leave_no_temporary_files_and_create_nothing_until_used(
    tmp_path: Path,
) -> None:
    store = DirectoryBlobStore(tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert list(store.list()) == []
    for i in range(5):
        data = f"blob {i}".encode() * 100
        store.put(digest(data), [data], len(data))
    assert os.listdir(tmp_path / "b" / "tmp") == []
    assert len(list(store.list())) == 5


def test_directory_store_reopens_from_its_location(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path / "b", durability="power")
    data = b"shared" * 100
    d = digest(data)
    store.put(d, [data], len(data))
    location = store.location()
    assert location.startswith("file://")
    again = open_blob_store(location)
    assert isinstance(again, DirectoryBlobStore)
    assert again.durability == "power"
    assert bytes(again.open(d)) == data
    assert MemoryBlobStore().location() is None
    assert isinstance(open_blob_store("memory://"), MemoryBlobStore)
    with pytest.raises(ValueError, match="unknown blob store location"):
        open_blob_store("s3://bucket")


def test_a_name_that_is_not_a_digest_is_refused(tmp_path: Path) -> None:
    blobs = DirectoryBlobStore(tmp_path / "b")
    with pytest.raises(ValueError, match=r"not a blob digest.*32 lowercase hex"):
        blobs.open("../../etc/passwd")
    sha256_name = "ab" * 32  # the length blobs were named by before xxh3-128
    with pytest.raises(ValueError, match="not a blob digest"):
        blobs.put(sha256_name, [b"x"], 1)
    with pytest.raises(ValueError, match="not a blob digest"):
        blobs.exists(digest(b"x").upper())


def test_digests_are_xxh3_128_hex_the_same_whichever_way_they_are_made() -> None:
    data = bytes(range(256)) * 1000
    d = digest(data)
    assert len(d) == DIGEST_LENGTH == 32
    assert is_digest(d)
    assert not is_digest(d[:-1])
    assert not is_digest(d + "0")
    assert not is_digest("g" * 32)
    # Known answer: the xxh3-128 of no bytes (so the hash cannot change unnoticed).
    assert digest(b"") == "99aa06d3014798d86001c324468d497f"
    hasher = new_hasher()
    for start in range(0, len(data), 7000):
        hasher.update(memoryview(data)[start : start + 7000])
    assert hasher.hexdigest() == d == digest_of([data[:10], memoryview(data)[10:]])
    assert digest(data[:-1] + b"\x00") != d


@pytest.mark.parametrize(
    ("url", "kind"),
    [("memory://", MemoryBlobStore), ("sqlite:///{tmp}/x.db", DirectoryBlobStore)],
    ids=["memory", "sqlite"],
)
async def test_every_store_has_blobs_beside_it(tmp_path: Path, url: str, kind: Any) -> None:
    async with open_store(url.format(tmp=tmp_path)) as store:
        assert isinstance(store.blobs, kind)
        if isinstance(store.blobs, DirectoryBlobStore):
            assert store.blobs.root == tmp_path / "x.db.blobs"
