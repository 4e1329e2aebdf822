"""Data in the Context (issue 22): types that survive, large values stored once by content.

Values go through every trip a Context makes: the next stage, a checkpoint and resume, a
cache hit, the inline and thread executors, on the memory and SQLite stores. Large values
are stored once in the store's blob store and come back read-only, memory-mapped.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import pickle
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import msgspec
import pytest
from hypothesis import given, settings
from tests.helpers import missing_extra, registry_with
from tests.strategies import data_values

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef, StageFailed
from crucible_actors._core import _data, _payload
from crucible_actors._core._data import (
    DEFAULT_BLOB_THRESHOLD,
    blob_digests,
    current_codec,
    externalize,
    inline_blobs,
    use_blob_store,
)
from crucible_actors._core._encoding import (
    decode_context,
    encode_context,
    encode_light,
    to_json_safe,
)
from crucible_actors._core._runtime import open_runtime
from crucible_actors._core.persistence._blobs import MemoryBlobStore, digest_of
from crucible_actors._core.persistence._persistence import open_persistence
from crucible_actors.cli import main
from crucible_actors.errors import BlobCorrupt, BlobMissing, EncodeError, MessageError
from crucible_actors.store import open_store
from crucible_actors.store._blobs import DirectoryBlobStore

if TYPE_CHECKING:
    from crucible_actors._core._ir import Isolation

np = pytest.importorskip("numpy", reason=missing_extra("dev"))
pd = pytest.importorskip("pandas", reason=missing_extra("dev"))
pa = pytest.importorskip("pyarrow", reason=missing_extra("dev"))

EXP = Experiment(id="e", pipeline=[StageDef(name="s")])


@dataclasses.dataclass
class Point:
    x: int
    y: tuple[int, int]


class Box(msgspec.Struct):
    name: str
    sizes: list[float]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def numpy_values() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    values: dict[str, Any] = {
        f"np_{dt}": (rng.random(50) * 100).astype(dt)
        for dt in (
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float16",
            "float32",
            "float64",
            "complex64",
            "complex128",
        )
    }
    values["np_bool"] = rng.random(50) > 0.5
    values["np_datetime64"] = np.arange("2024-01-01", "2024-02-20", dtype="datetime64[D]")
    values["np_datetime64_ns"] = np.array(["2024-01-01T00:00:00.5"], dtype="datetime64[ns]")
    values["np_timedelta64"] = np.arange(5).astype("timedelta64[s]")
    values["np_f_order"] = np.asfortranarray(rng.random((7, 3)))
    values["np_zero_d"] = np.array(3.5)
    values["np_empty"] = np.empty((0, 4))
    values["np_scalar"] = np.float64(0.25)
    return values


def frame_values() -> dict[str, Any]:
    df = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "s": pd.array(["a", "b", None], dtype="string"),
            "c": pd.Categorical(["x", "y", "x"]),
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    return {
        "df": df,
        "series": pd.Series([1.5, 2.5], index=["p", "q"], name="v"),
        "table": table,
        "batch": table.to_batches()[0],
    }


def python_values() -> dict[str, Any]:
    return {
        "tuple": (1, "two", 3.0),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "dataclass": Point(1, (2, 3)),
        "struct": Box("b", [1.0, 2.0]),
        "enum": Color.BLUE,
        "nested": {"points": [Point(0, (0, 0))], "pair": (Color.RED, {4})},
        "plain": {"a": [1, 2, {"b": None}]},
    }


def all_values() -> dict[str, Any]:
    return {**numpy_values(), **frame_values(), **python_values()}


def assert_same(got: Any, want: Any, key: str = "") -> None:
    assert type(got) is type(want), key
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want)
    elif isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want)
    elif isinstance(want, pa.Table | pa.RecordBatch):
        assert got.equals(want), key
    else:
        assert got == want, key


def assert_all_same(assigns: dict[str, Any], want: dict[str, Any]) -> None:
    assert set(assigns) >= set(want)
    for key, value in want.items():
        assert_same(assigns[key], value, key)


# -- the codec on its own ------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, DEFAULT_BLOB_THRESHOLD], ids=["by-reference", "inline"])
def test_every_type_round_trips_as_itself(threshold: int) -> None:
    values = all_values()
    store = MemoryBlobStore()
    with use_blob_store(store, threshold=threshold):
        back = decode_context(encode_context(Context.new(EXP, assigns=values)))
    assert_all_same(back.assigns, values)
    assert (len(list(store.list())) > 0) is (threshold == 0)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(value=data_values)
def test_any_mix_of_plain_and_packed_values_round_trips_as_itself(value: Any) -> None:
    with use_blob_store(MemoryBlobStore(), threshold=64):
        back = decode_context(encode_context(Context.new(EXP, assigns={"v": value})))
    assert back.assigns["v"] == value
    assert same_types(back.assigns["v"], value)  # tuples stay tuples, sets sets


def same_types(got: Any, want: Any) -> bool:
    if type(got) is not type(want):
        return False
    if isinstance(want, dict):
        return all(same_types(got[k], v) for k, v in want.items())
    if isinstance(want, list | tuple):
        return all(same_types(g, w) for g, w in zip(got, want, strict=True))
    return True


@pytest.mark.parametrize("threshold", [0, DEFAULT_BLOB_THRESHOLD], ids=["by-reference", "inline"])
def test_decoded_arrays_are_read_only_and_writing_raises_numpys_error(threshold: int) -> None:
    with use_blob_store(MemoryBlobStore(), threshold=threshold):
        ctx = Context.new(EXP, assigns={"X": np.arange(100_000.0)})
        x = decode_context(encode_context(ctx)).assigns["X"]
    assert x.flags.writeable is False
    with pytest.raises(ValueError, match="read-only"):
        x[0] = 1.0
    copy = x.copy()  # what the README says to do
    copy[0] = 1.0
    assert copy[0] == 1.0


def test_metrics_outputs_and_artifacts_carry_values_too() -> None:
    ctx = (
        Context.new(EXP)
        .put_metric("acc", np.float64(0.5))
        .add_output((1, 2))
        .put_artifact("pts", {Color.RED})
    )
    with use_blob_store(MemoryBlobStore()):
        back = decode_context(encode_context(ctx))
    assert type(back.metrics["acc"]) is np.float64
    assert back.outputs == [(1, 2)]
    assert back.artifacts == {"pts": {Color.RED}}


def test_a_small_plain_context_is_plain_msgpack() -> None:
    ctx = Context.new(EXP, assigns={"a": 1, "b": ["x", {"y": 2.5}]})
    with use_blob_store(MemoryBlobStore()):
        data = encode_context(ctx)
    # Readable by any msgpack reader: no extension types.
    assert msgspec.msgpack.decode(data)["assigns"] == {"a": 1, "b": ["x", {"y": 2.5}]}


@pytest.mark.parametrize(
    "inner", [(1, 2), {3}, frozenset({4}), Color.RED, Point(1, (2, 3))], ids=repr
)
def test_a_list_mutated_in_place_to_hold_a_non_plain_value_keeps_its_type(inner: Any) -> None:
    ctx = decode_context(encode_context(Context.new(EXP, assigns={"L": ["a", "b"]})))
    ctx = ctx.mark_stage_complete("one")
    ctx.assigns["L"].append(inner)  # the very list decoded from the snapshot
    ctx.assigns["completed_stages"].append(inner)  # the runtime's own short list too
    got = decode_context(encode_context(ctx)).assigns
    assert got["L"] == ["a", "b", inner]
    assert type(got["L"][2]) is type(inner)
    assert type(got["completed_stages"][1]) is type(inner)


def test_a_large_plain_value_is_stored_by_reference_and_comes_back_equal() -> None:
    value = {"rows": [{"i": i, "name": f"n{i}"} for i in range(500)]}
    store = MemoryBlobStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(Context.new(EXP, assigns={"big": value, "small": 1}))
        assert len(data) < 1000
        assert decode_context(data).assigns == {"big": value, "small": 1}
    assert len(blob_digests(data)) == 1


def test_identical_content_is_stored_once() -> None:
    store = MemoryBlobStore()
    x = np.arange(50_000.0)
    with use_blob_store(store, threshold=1000):
        encode_context(Context.new(EXP, assigns={"a": x, "b": x.copy()}))
        encode_context(Context.new(EXP, assigns={"c": x}))
    assert len(list(store.list())) == 1


class CountingStore(MemoryBlobStore):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, digest: str, chunks: Any, size: int) -> bool:
        self.puts += 1
        return super().put(digest, chunks, size)


def test_a_read_only_array_passed_on_is_not_pickled_or_hashed_again() -> None:
    store = CountingStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(Context.new(EXP, assigns={"X": np.arange(100_000.0)}))
        assert store.puts == 1
        for _ in range(5):  # five stages passing X on
            data = encode_context(decode_context(data).assign("n", 1))
        assert store.puts == 1  # remembered by identity: no pickle, no hash, no write
        codec = current_codec()
        assert codec is not None
        x = decode_context(data).assigns["X"]
        assert codec.recall(x) is not None


# -- frames: one blob per content, no re-pickling when unchanged -----------------------------


def rich_frame(rows: int = 2000) -> Any:
    return pd.DataFrame(
        {
            "i": np.arange(rows),
            "f": np.linspace(0.0, 1.0, rows),
            "s": [f"s{i}" for i in range(rows)],
            "c": pd.Categorical(["a", "b"] * (rows // 2)),
            "t": pd.date_range("2024-01-01", periods=rows, freq="min"),
            "m": pd.array(range(rows), dtype="Int64"),
        },
        index=pd.Index(np.arange(rows) * 2, name="row"),
    )


def packed_digest(value: Any) -> str:
    chunks, _ = _payload.pack(value)
    return digest_of(chunks)


@pytest.mark.parametrize(
    "make",
    [
        rich_frame,
        lambda: rich_frame().reset_index(),  # a RangeIndex
        lambda: rich_frame()["t"],
        lambda: np.arange(100_000.0).reshape(1000, 100),
        lambda: np.asfortranarray(np.ones((300, 200))),
        lambda: np.ones((400, 400))[:, ::2],  # not contiguous
        lambda: np.arange(50_000).astype("datetime64[s]"),
        lambda: pa.table({"a": np.arange(20_000), "s": [f"x{i}" for i in range(20_000)]}),
    ],
    ids=[
        "frame",
        "frame-range-index",
        "series",
        "array",
        "f-order",
        "strided",
        "datetime64",
        "table",
    ],
)
def test_a_value_read_back_from_a_blob_pickles_to_the_same_digest(make: Any) -> None:
    value = make()
    store = MemoryBlobStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(Context.new(EXP, assigns={"v": value}))
        back = decode_context(data).assigns["v"]
    [digest] = [info.digest for info in store.list()]
    assert packed_digest(value) == digest
    assert packed_digest(back) == digest  # read-only buffers: same pickle bytes
    assert_same(back, value)
    # Read back from its own blob again (the next stage's view of it).
    with use_blob_store(store, threshold=1000):
        again = decode_context(encode_context(Context.new(EXP, assigns={"v": back})))
    assert packed_digest(again.assigns["v"]) == digest
    assert [info.digest for info in store.list()] == [digest]


class CountingPacks:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = _data.pack

        def pack(value: Any) -> Any:
            self.calls += 1
            return real(value)

        monkeypatch.setattr(_data, "pack", pack)


def test_an_unchanged_frame_passed_on_is_not_pickled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    packs = CountingPacks(monkeypatch)
    store = CountingStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(
            Context.new(EXP, assigns={"df": rich_frame(), "s": rich_frame()["f"]})
        )
        assert (store.puts, packs.calls) == (2, 2)
        for _ in range(5):  # five stages passing the frame on
            data = encode_context(decode_context(data).assign("n", 1))
        assert (store.puts, packs.calls) == (2, 2)  # remembered: no pickle, no hash, no write
        codec = current_codec()
        assert codec is not None
        ctx = decode_context(data)
        assert codec.remembers(ctx.assigns["df"])
        assert codec.remembers(ctx.assigns["s"])
    assert_same(ctx.assigns["df"], rich_frame())


def _set_loc(df: Any) -> None:
    df.loc[0, "s"] = "changed"


def _set_datetime(df: Any) -> None:
    df.loc[0, "t"] = df["t"].iloc[5]


def _assign_column(df: Any) -> None:
    df["f"] = 0.5


def _new_column(df: Any) -> None:
    df["new"] = 1


def _rename(df: Any) -> None:
    df.rename(columns={"i": "j"}, inplace=True)


def _attrs(df: Any) -> None:
    df.attrs["k"] = 1


def _index_name(df: Any) -> None:
    df.index.name = "renamed"


def _columns_name(df: Any) -> None:
    df.columns.name = "cols"


def _delete(df: Any) -> None:
    del df["c"]


def _flags(df: Any) -> None:
    df.flags.allows_duplicate_labels = False


def _set_masked(df: Any) -> None:
    df.loc[0, "m"] = 99


@pytest.mark.parametrize(
    "edit",
    [
        _set_loc,
        _set_datetime,
        _assign_column,
        _new_column,
        _rename,
        _attrs,
        _index_name,
        _columns_name,
        _delete,
        _flags,
        _set_masked,
    ],
)
def test_a_frame_changed_in_place_is_stored_again(
    edit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CountingStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(Context.new(EXP, assigns={"df": rich_frame()}))
        ctx = decode_context(data)
        df = ctx.assigns["df"]
        error = ""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas 3.1 deprecates inplace=True
                edit(df)
        except ValueError as exc:  # numpy's read-only error: nothing changed
            error = str(exc)
        # numpy's read-only error (pandas re-raises it for a datetime column as
        # OutOfBoundsDatetime, a ValueError): nothing changed.
        changed = not error
        want = df.copy(deep=True)
        want_attrs, want_flags = dict(df.attrs), df.flags.allows_duplicate_labels
        packs = CountingPacks(monkeypatch)
        again = decode_context(encode_context(ctx))
    # Changed: pickled and stored again. Refused: still the blob it came from, not pickled.
    assert (packs.calls, store.puts) == ((1, 2) if changed else (0, 1))
    got = again.assigns["df"]
    pd.testing.assert_frame_equal(got, want)
    assert got.attrs == want_attrs
    assert got.flags.allows_duplicate_labels == want_flags


def test_an_edit_the_read_only_arrays_refuse_changes_nothing() -> None:
    store = CountingStore()
    with use_blob_store(store, threshold=1000):
        ctx = decode_context(encode_context(Context.new(EXP, assigns={"df": rich_frame()})))
        df = ctx.assigns["df"]
        stamp = df["t"].iloc[5]
        for column, new in (("i", 5), ("f", 0.5), ("c", "b"), ("t", stamp), ("m", 7)):
            with pytest.raises(ValueError, match=r"read-only|high-resolution"):
                df.loc[0, column] = new
        encode_context(ctx)
        codec = current_codec()
        assert codec is not None
        assert codec.remembers(df)
    assert store.puts == 1
    pd.testing.assert_frame_equal(df, rich_frame())


def test_a_frame_with_an_object_column_is_re_encoded_each_time() -> None:
    # Cells of an object column may be mutable objects: no fingerprint can vouch for them.
    frame = pd.DataFrame({"o": pd.Series([[i] for i in range(5000)], dtype=object)})
    store = CountingStore()
    with use_blob_store(store, threshold=1000):
        ctx = decode_context(encode_context(Context.new(EXP, assigns={"df": frame})))
        ctx.assigns["df"].loc[0, "o"].append(7)
        back = decode_context(encode_context(ctx)).assigns["df"]
    assert back.loc[0, "o"] == [0, 7]
    assert store.puts == 2


@pytest.mark.slow
def test_a_five_stage_run_stores_an_unchanged_frame_once(tmp_path: Path) -> None:
    @ca.stage("load")
    def load(ctx: Context, opts: Any) -> Context:
        return ctx.assign("df", rich_frame(20_000))

    @ca.stage("read")
    def read(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("rows", ctx.metrics.get("rows", 0) + len(ctx.assigns["df"]))

    reg = registry_with(load)
    for i in range(4):
        reg.register(read, f"r{i}")
    exp = Experiment(
        id="frames",
        pipeline=[StageDef(name="load")] + [StageDef(name=f"r{i}") for i in range(4)],
    )
    url = f"sqlite:///{tmp_path}/x.db"
    final = ca.run(exp, registry=reg, store=url)
    assert final.metrics["rows"] == 80_000
    blobs = DirectoryBlobStore(f"{tmp_path}/x.db.blobs")
    assert len(list(blobs.list())) == 1
    pd.testing.assert_frame_equal(final.assigns["df"], rich_frame(20_000))


class TouchCountingStore(CountingStore):
    def __init__(self) -> None:
        super().__init__()
        self.touches = 0

    def touch(self, digest: str) -> bool:
        self.touches += 1
        return super().touch(digest)


def test_a_recalled_blob_is_touched_at_most_once_a_second_and_rewritten_if_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_data, "_monotonic", lambda: now[0])
    store = TouchCountingStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(Context.new(EXP, assigns={"X": np.arange(100_000.0)}))
        ctx = decode_context(data)
        for _ in range(5):  # five stages within the interval: one touch
            encode_context(ctx)
        assert (store.puts, store.touches) == (1, 1)
        now[0] += _data.TOUCH_INTERVAL
        encode_context(ctx)
        assert (store.puts, store.touches) == (1, 2)  # refreshed, so gc spares it

        [digest] = [b.digest for b in store.list()]
        store.delete(digest)  # collected meanwhile: the value is written again
        now[0] += _data.TOUCH_INTERVAL
        data = encode_context(ctx)
        assert (store.puts, store.touches) == (2, 3)
        assert len(list(store.list())) == 1
        np.testing.assert_array_equal(decode_context(data).assigns["X"], ctx.assigns["X"])


def test_blob_digests_inline_blobs_and_externalize_round_trip() -> None:
    store = MemoryBlobStore()
    values = {"X": np.arange(20_000.0), "df": frame_values()["df"], "t": (1, 2)}
    with use_blob_store(store, threshold=10_000):
        data = encode_context(Context.new(EXP, assigns=values))
    digests = blob_digests(data)
    assert len(digests) == 1
    assert digests <= {b.digest for b in store.list()}
    inline = inline_blobs(data, store)
    assert blob_digests(inline) == set()
    with use_blob_store(None):  # a worker without the store decodes the inline form
        assert_all_same(decode_context(inline).assigns, values)
    other = MemoryBlobStore()
    again = externalize(inline, other, 10_000)
    assert blob_digests(again) == digests
    with use_blob_store(other):
        assert_all_same(decode_context(again).assigns, values)


def test_a_missing_blob_raises_blob_missing_naming_key_run_and_digest() -> None:
    store = MemoryBlobStore()
    with use_blob_store(store, threshold=1000):
        ctx = Context.new(EXP, run_id="r1", assigns={"X": np.arange(20_000.0)})
        data = encode_context(ctx)
    (digest,) = blob_digests(data)
    store.delete(digest)
    with use_blob_store(store), pytest.raises(BlobMissing) as info:
        decode_context(data)
    err = info.value
    assert (err.digest, err.key, err.run_id) == (digest, "assigns['X']", "r1")
    assert digest[:16] in str(err)
    assert "assigns['X']" in str(err)
    assert "\n" not in str(err)


def test_a_corrupted_blob_raises_blob_corrupt() -> None:
    store = MemoryBlobStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(Context.new(EXP, assigns={"X": np.arange(20_000.0)}))
    (digest,) = blob_digests(data)
    store.corrupt(digest, bytes(store.open(digest))[:-8] + b"\0" * 8)
    with use_blob_store(store), pytest.raises(BlobCorrupt) as info:
        decode_context(data)
    assert info.value.key == "assigns['X']"


def test_a_stored_value_naming_a_dangerous_global_is_refused() -> None:
    body = pickle.dumps(os.system, protocol=5)
    chunks, _ = _payload.payload(_payload.KIND_PICKLE, body, [], "x")
    payload = msgspec.msgpack.Ext(_payload.EXT_PACKED, b"".join(chunks))
    raw = msgspec.msgpack.encode(
        {
            "experiment_id": "e",
            "run_id": "r",
            "experiment": msgspec.to_builtins(EXP),
            "assigns": {"x": payload},
        }
    )
    with pytest.raises(MessageError, match=r"refusing to load (posix|nt)\.system"):
        decode_context(raw)


def test_deeply_nested_value_fails_with_encode_error_naming_the_key() -> None:
    nested: dict[str, Any] = {}
    for _ in range(10_000):
        nested = {"k": nested}
    with pytest.raises(EncodeError) as info:
        encode_context(Context.new(EXP, assigns={"deep": nested}))
    assert info.value.path == "assigns['deep']"


@pytest.mark.parametrize(
    "make",
    [lambda: lambda: 1, lambda: open(os.devnull), threading.Lock],  # noqa: SIM115
    ids=["lambda", "open-file", "lock"],
)
def test_unencodable_values_fail_with_encode_error_naming_the_key(make: Any) -> None:
    value = make()
    try:
        with pytest.raises(EncodeError) as info:
            encode_context(Context.new(EXP, assigns={"thing": [1, {"inner": value}]}))
        assert info.value.path.startswith("assigns['thing']")
    finally:
        if hasattr(value, "close"):
            value.close()


def test_to_json_safe_writes_numbers_lists_and_summaries_never_a_huge_repr() -> None:
    got = to_json_safe(
        {
            "acc": np.float64(0.75),
            "n": np.int64(3),
            "small": np.arange(3),
            "big": np.zeros((2000, 3)),
            "df": frame_values()["df"],
        }
    )
    assert got["acc"] == 0.75
    assert type(got["acc"]) is float
    assert got["n"] == 3
    assert got["small"] == [0, 1, 2]
    assert got["big"] == {"type": "numpy.ndarray", "shape": [2000, 3], "dtype": "float64"}
    assert got["df"]["type"] == "pandas.DataFrame"
    assert len(msgspec.json.encode(got)) < 1000


# -- through the runtime -------------------------------------------------------------------


@ca.stage("data_make")
def data_make(ctx: Context, opts: Any) -> Context:
    return ctx.assign(**all_values()).assign(big=np.random.default_rng(1).random(100_000))


@ca.stage("data_check")
def data_check(ctx: Context, opts: Any) -> Context:
    assert_all_same(ctx.assigns, all_values())
    big = ctx.assigns["big"]
    assert big.flags.writeable is False
    np.testing.assert_array_equal(big, np.random.default_rng(1).random(100_000))
    if opts.get("fail_unless") and not Path(opts["fail_unless"]).exists():
        raise RuntimeError("not yet")
    return ctx.put_metric("acc", np.float64(0.5)).put_metric(
        "checked", ctx.get_metric("checked", 0) + 1
    )


def data_registry() -> Registry:
    return registry_with(data_make, data_check)


def data_experiment(isolation: Isolation = "inline", **check_opts: Any) -> Experiment:
    return Experiment(
        id="data",
        pipeline=[
            StageDef(name="data_make", isolation=isolation),
            StageDef(name="data_check", isolation=isolation),
            StageDef(name="check2", stage=data_check, isolation=isolation, options=check_opts),
        ],
    )


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/x.db"


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["inline", "thread"])
async def test_values_survive_every_stage_on_each_executor_and_store(
    isolation: Isolation, store_url: str
) -> None:
    final = await ca.run_async(
        data_experiment(isolation), registry=data_registry(), store=store_url
    )
    assert_all_same(final.assigns, all_values())
    assert final.metrics["checked"] == 2
    assert type(final.metrics["acc"]) is np.float64


@pytest.mark.slow
async def test_values_survive_without_a_store() -> None:
    final = await ca.run_async(data_experiment(), registry=data_registry())
    assert_all_same(final.assigns, all_values())
    assert final.assigns["big"].flags.writeable is False


@pytest.mark.slow
async def test_values_survive_checkpoint_and_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    flag = tmp_path / "fixed"
    reg = data_registry()
    with pytest.raises(StageFailed):
        await ca.run_async(
            data_experiment(fail_unless=str(flag)), registry=reg, store=url, run_id="r1"
        )
    flag.touch()
    async with (
        open_persistence(url) as persistence,
        open_runtime(registry=reg, store=persistence, on_start="ignore") as rt,
    ):
        handle = await persistence.resume_run(rt, "r1")
        final = await handle.result()
    assert handle.resumed_from == 2
    assert_all_same(final.assigns, all_values())
    async with open_store(url) as store:
        run = await store.get_run("r1")
    assert run.status == "completed"
    assert run.metrics["acc"] == 0.5  # a numpy scalar metric is stored as a JSON number


@pytest.mark.slow
async def test_values_survive_a_cache_hit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    experiment = Experiment(
        id="cached",
        pipeline=[StageDef(name="data_make", cache=True), StageDef(name="data_check")],
    )
    reg = data_registry()
    await ca.run_async(experiment, registry=reg, store=url)
    blobs = DirectoryBlobStore(f"{tmp_path}/x.db.blobs")
    before = sorted(b.digest for b in blobs.list())
    async with open_runtime(registry=reg, store=url) as rt:
        handle = await rt.submit(experiment)
        final = await handle.result()
    assert [a.cache_hit for a in handle.attempts] == [True, False]
    assert_all_same(final.assigns, all_values())
    assert sorted(b.digest for b in blobs.list()) == before


async def test_blob_threshold_comes_from_the_argument_then_crucible_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_runtime(registry=Registry()) as rt:
        assert rt.codec.threshold == DEFAULT_BLOB_THRESHOLD
    (tmp_path / "crucible.toml").write_text("[runtime]\nblob_threshold = 1024\n")
    async with open_runtime(registry=Registry()) as rt:
        assert rt.codec.threshold == 1024
    (tmp_path / "crucible.toml").write_text("[runtime]\nblob_threshold = 'big'\n")
    async with open_runtime(registry=Registry()) as rt:
        with pytest.raises(ValueError, match=r"crucible.toml: \[runtime\] blob_threshold"):
            rt.codec.threshold  # noqa: B018 - read when a run first needs it
    async with open_runtime(registry=Registry(), blob_threshold=7) as rt:
        assert rt.codec.threshold == 7
    with pytest.raises(ValueError, match="blob_threshold"):
        async with open_runtime(registry=Registry(), blob_threshold=-1):
            pass


async def test_a_nested_value_too_deep_fails_the_stage_naming_the_key() -> None:
    @ca.stage("deep")
    def deep(ctx: Context, opts: Any) -> Context:
        nested: dict[str, Any] = {}
        for _ in range(10_000):
            nested = {"k": nested}
        return ctx.assign("key", nested)

    reg = registry_with(deep)
    with pytest.raises(StageFailed) as info:
        await ca.run_async(Experiment(id="d", pipeline=[StageDef(name="deep")]), registry=reg)
    assert isinstance(info.value.reason, EncodeError)
    assert info.value.reason.path == "assigns['key']"


# -- the issue's contract --------------------------------------------------------------------

CONTRACT_STAGES = """
import dataclasses

import anyio
import anyio.from_thread
import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa

from crucible_actors import stage


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Box(msgspec.Struct):
    name: str


def expected():
    return {
        "df": pd.DataFrame({"a": [1, 2], "s": ["x", "y"]}),
        "table": pa.table({"b": [1.5, 2.5]}),
        "tuple": (1, 2),
        "set": {"a", "b"},
        "point": Point(1, 2),
        "box": Box("b"),
    }


@stage("load")
def load(ctx, opts):
    return ctx.assign(X=np.random.default_rng(0).random((5_000_000,)), **expected())


@stage("read")
def read(ctx, opts):
    x = ctx.assigns["X"]
    assert x.flags.writeable is False
    return ctx.update_metric("sum", lambda old: float(x.sum()), 0.0)


@stage("last")
def last(ctx, opts):
    x = ctx.assigns["X"]
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.float64 and x.flags.writeable is False
    assert np.array_equal(x, np.random.default_rng(0).random((5_000_000,)))
    want = expected()
    assert ctx.assigns["df"].equals(want["df"])
    assert ctx.assigns["table"].equals(want["table"])
    for key in ("tuple", "set", "point", "box"):
        got = ctx.assigns[key]
        assert type(got) is type(want[key]) and got == want[key], key
    if opts.get("fail_unless"):
        import os
        if not os.path.exists(opts["fail_unless"]):
            raise RuntimeError("not yet")
    return ctx.put_metric("ok", True)
"""


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.fixture
def contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "stages_dir").mkdir()
    (tmp_path / "stages_dir" / "contract_stages.py").write_text(CONTRACT_STAGES)
    monkeypatch.syspath_prepend(str(tmp_path / "stages_dir"))
    monkeypatch.chdir(tmp_path / "stages_dir")
    monkeypatch.delitem(sys.modules, "contract_stages", raising=False)
    store_dir = tmp_path / "DIR"
    store_dir.mkdir()
    return store_dir


def contract_experiment(**last_opts: Any) -> Experiment:
    return Experiment(
        id="contract",
        pipeline=[
            StageDef(name="load", stage="contract_stages:load"),
            StageDef(name="r2", stage="contract_stages:read"),
            StageDef(name="r3", stage="contract_stages:read"),
            StageDef(name="r4", stage="contract_stages:read"),
            StageDef(name="last", stage="contract_stages:last", options=last_opts),
        ],
    )


@pytest.mark.slow
def test_contract_a_40_mb_array_is_stored_once_and_arrives_read_only(contract: Path) -> None:
    url = f"sqlite:///{contract}/x.db"
    final = ca.run(contract_experiment(), registry=Registry(), store=url)
    x = final.assigns["X"]
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.float64
    assert x.flags.writeable is False
    assert final.metrics["ok"] is True
    first = dir_size(contract)
    assert first <= 1.25 * 40_000_000
    ca.run(contract_experiment(), registry=Registry(), store=url)
    assert dir_size(contract) - first <= 2_000_000


@pytest.mark.slow
def test_contract_resume_with_a_missing_blob_exits_non_zero_with_one_line(
    contract: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{contract}/x.db"
    flag = contract / "fixed"
    with pytest.raises(StageFailed):
        ca.run(
            contract_experiment(fail_unless=str(flag)),
            registry=Registry(),
            store=url,
            run_id="run-1",
        )
    blobs = DirectoryBlobStore(f"{contract}/x.db.blobs")
    removed = [info.digest for info in blobs.list()]
    assert removed
    for digest in removed:
        blobs.delete(digest)
    flag.touch()
    capsys.readouterr()
    code = main(["runs", "resume", "run-1", "--store", url])
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "missing" in lines[0]
    assert "run-1" in lines[0]
    assert "before stage 'last'" in lines[0]
    assert any(d[:16] in lines[0] for d in removed)


@pytest.mark.slow
def test_contract_resume_with_a_corrupted_blob_raises_blob_corrupt(
    contract: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{contract}/x.db"
    flag = contract / "fixed"
    with pytest.raises(StageFailed):
        ca.run(
            contract_experiment(fail_unless=str(flag)),
            registry=Registry(),
            store=url,
            run_id="run-1",
        )
    blobs = DirectoryBlobStore(f"{contract}/x.db.blobs")
    biggest = max(blobs.list(), key=lambda info: info.size)
    path = blobs.root / biggest.digest[:2] / biggest.digest
    with open(path, "r+b") as f:
        f.seek(biggest.size - 100)
        f.write(b"\xff" * 8)
    flag.touch()
    capsys.readouterr()
    code = main(["runs", "resume", "run-1", "--store", url])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "does not match its digest" in err
    assert "assigns['X']" in err


@pytest.mark.slow
async def test_values_survive_a_process_pool_attempt(tmp_path: Path) -> None:
    # The pool's workers open no blob store yet: values stored by reference reach them
    # inline, and what they return is stored by reference again on the driver.
    final = await ca.run_async(
        data_experiment("process"), registry=data_registry(), store=f"sqlite:///{tmp_path}/x.db"
    )
    assert_all_same(final.assigns, all_values())
    assert final.assigns["big"].flags.writeable is False
    assert len(list(DirectoryBlobStore(tmp_path / "x.db.blobs").list())) >= 1


_attempts: list[int] = []


@ca.stage("data_flaky")
def data_flaky(ctx: Context, opts: Any) -> Context:
    _attempts.append(1)
    x = ctx.assigns["big"]
    np.testing.assert_array_equal(x, np.random.default_rng(1).random(100_000))
    ctx = ctx.assign(big=np.zeros(3), extra=(1, 2))
    if len(_attempts) == 1:
        raise RuntimeError("first attempt fails after replacing values")
    return ctx


async def test_a_retry_starts_from_the_snapshot_with_the_original_values() -> None:
    _attempts.clear()
    reg = data_registry()
    reg.register(data_flaky)
    experiment = Experiment(
        id="retry",
        pipeline=[
            StageDef(name="data_make"),
            StageDef(name="data_flaky", restart="transient", max_restarts=2),
        ],
    )
    final = await ca.run_async(experiment, registry=reg)
    assert len(_attempts) == 2
    assert final.assigns["extra"] == (1, 2)


# -- a large encode does not stall the loop ---------------------------------------------

ENCODING: dict[str, Any] = {}


class SlowToPickle:
    """Pickling it (the encode of its stage's result) waits until another run's stage ran."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        state = ENCODING.get("state")
        if state is not None and not state["gate"].is_set():
            state["order"].append("encode started")
            # Only a worker thread started by anyio can call back into the loop.
            try:
                anyio.from_thread.run_sync(state["started"].set)
            except RuntimeError:  # on the loop's thread: waiting would stall it
                state["order"].append("encoding on the event loop")
                state["started"].set()
            else:
                state["order"].append(
                    "encode finished" if state["gate"].wait(10) else "gate never opened"
                )
        return (SlowToPickle, ())


@ca.stage("slow_to_encode")
async def slow_to_encode(ctx: Context, opts: Any) -> Context:
    return ctx.assign("slow", SlowToPickle())


@ca.stage("open_gate")
async def open_gate(ctx: Context, opts: Any) -> Context:
    state = ENCODING["state"]
    state["order"].append("other run's stage ran")
    state["gate"].set()
    return ctx


@pytest.mark.parametrize("isolation", ["inline", "thread"])
async def test_a_stage_of_another_run_progresses_while_a_result_is_encoded(
    isolation: Isolation,
) -> None:
    state = {
        "gate": threading.Event(),
        "started": anyio.Event(),
        "order": [],
    }
    ENCODING["state"] = state
    reg = registry_with(slow_to_encode, open_gate)
    slow = Experiment(id="slow", pipeline=[StageDef(name="slow_to_encode", isolation=isolation)])
    other = Experiment(id="other", pipeline=[StageDef(name="open_gate", isolation=isolation)])
    try:
        with anyio.fail_after(30):
            async with open_runtime(registry=reg) as rt:
                first = await rt.submit(slow)
                await state["started"].wait()  # the encode runs, off the loop
                second = await rt.submit(other)
                assert await second.wait() is ca.RunStatus.COMPLETED
                assert await first.wait() is ca.RunStatus.COMPLETED
                assert type((await first.result()).assigns["slow"]) is SlowToPickle
    finally:
        ENCODING.clear()
        state["gate"].set()
    assert state["order"] == ["encode started", "other run's stage ran", "encode finished"]


def test_encode_light_leaves_only_costly_encodes_to_a_thread() -> None:
    store = MemoryBlobStore()
    with use_blob_store(store, threshold=1000):
        data = encode_context(Context.new(EXP, assigns={"X": np.arange(100_000.0)}))
        ctx = decode_context(data).mark_stage_complete("a")  # X: read-only, remembered
        assert encode_light(ctx) is None  # a touch of X's blob is due: off the loop
        encode_context(ctx)  # touched now
        light = ctx.assign(pair=(1, 2), tags={"x", "y"}, meta={"k": 1.5}, name="n" * 100)
        assert encode_light(light) is not None
        assert_same(decode_context(encode_light(light)).assigns["pair"], (1, 2))
        for heavy in (
            {"Y": np.arange(100_000.0)},  # new: to pickle, hash and write
            {"blob": b"x" * 100_000},  # plain but stored by reference
            {"rows": [{"i": i} for i in range(100)]},
            {"obj": Point(1, (2, 3))},
        ):
            assert encode_light(ctx.assign(**heavy)) is None, heavy
