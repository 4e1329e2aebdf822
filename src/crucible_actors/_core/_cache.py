"""The stage result cache: a stage's key, what its stored result holds, and a hit.

A stage is cached when ``StageDef.cache`` is true, or unset while the experiment's
``[cache] default`` is true, and its class does not say ``cacheable = False``. Before
the stage's first attempt the run supervisor (``_run.py``) computes its **key**, the
SHA-256 hex digest of, each part length-prefixed:

- the stage's label (``StageDef.label``), its ``"module:qualname"`` reference (its
  class name when it has none), its declared ``version`` (default ``"1"``) and the
  fingerprint of its own code (:func:`~._fingerprint.code_fingerprint`: the normalized
  source of its function or class, so an edit to the stage's body is a new key while a
  comment, formatting or docstring change is not; ``version`` is still what to bump
  for a change the fingerprint cannot see: a helper it calls, a global, a data file);
- its options, normalized: the converted ``Options`` Struct (defaults filled in), or
  the options mapping over the ``defaults`` of its ``describe()``, as JSON with sorted
  keys (functions and classes as their references);
- a digest of the encoded input Context without its volatile fields: the snapshot's
  ``experiment_id``, ``outputs``, ``metrics``, ``artifacts`` and ``assigns`` as
  encoded, the experiment's fields except ``pipeline`` (the stage's own options are
  in the key; the other stages reach it only through the Context), ``sweep``,
  ``cache``, ``max_restarts``, ``max_seconds``, ``created_at`` and ``updated_at``,
  and ``telemetry_context["seed"]`` if present (a sweep's repeats differ only by their
  seed; a stage that samples must not replay one repeat for all). Left out: the run
  id, the rest of ``telemetry_context`` (attempt, idempotency key, sweep ids) and the
  decision trace (timestamps, ids).

The parts are the encoded bytes, so equal values built in a different order (dict
insertion order) give another key: a miss, never a wrong hit.

The **result** of a successful attempt is the msgpack map of those of ``outputs``,
``metrics``, ``artifacts`` and ``assigns`` whose encoding the stage changed (the new
value, whole). Since the key pins the input, that is exactly the output Context's
changes. A hit applies it: the next snapshot is the input snapshot with those fields
replaced, built from bytes without decoding the Context (when the run records a
decision trace, it is decoded to add ``stage_start``/``stage_complete`` events; the
trace events the stage itself added when it ran are not replayed). A stage that
replaced ``ctx.experiment`` is not cached (a result replays data, not an experiment).

Results live in the store
(:meth:`~crucible_actors._core.persistence._store.Store.put_cached_result`): the first
write of a key wins, so two runs that miss on one key at once both compute it and it is
stored once. Only successful attempts are stored; a store error while looking up or
storing is logged and the stage simply runs (the cache is an optimization, never a
reason for a run to fail).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ._fingerprint import code_fingerprint
from ._ir import Experiment, is_plugin_object, stage_ref
from ._memo import IdentityMemo
from .persistence._store import CachedResult

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._executor import PreparedStage
    from ._stage import Stage

__all__ = [
    "KEY_FORMAT",
    "RESULT_FIELDS",
    "CacheProbe",
    "RunCache",
    "StageCache",
    "apply_result",
    "result_of",
    "stage_key",
]

log = logging.getLogger("crucible_actors.cache")

#: The first part of every key; bump it when the key's definition changes.
KEY_FORMAT: Final = b"crucible-cache/2"

#: The Context fields a stage's result is made of (everything else belongs to the run).
RESULT_FIELDS: Final = ("outputs", "metrics", "artifacts", "assigns")
# Their encoding when empty: ``encode_context`` leaves empty fields out.
_EMPTY: Final = {"outputs": b"\x90", "metrics": b"\x80", "artifacts": b"\x80", "assigns": b"\x80"}

#: Experiment fields left out of the input digest (see the module docstring).
EXPERIMENT_EXCLUDED: Final = frozenset(
    {"pipeline", "sweep", "cache", "max_restarts", "max_seconds", "created_at", "updated_at"}
)
_EXPERIMENT_FIELDS: Final = tuple(
    f for f in Experiment.__struct_fields__ if f not in EXPERIMENT_EXCLUDED
)

_raw_fields = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])
_telemetry = msgspec.msgpack.Decoder(dict[str, Any])
_msgpack = msgspec.msgpack.Encoder()


def _options_hook(obj: Any) -> Any:
    if is_plugin_object(obj):
        return stage_ref(obj)
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


_options_json = msgspec.json.Encoder(enc_hook=_options_hook, order="sorted")


def _part(h: Any, data: bytes | msgspec.Raw | memoryview) -> None:
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def stage_cacheable(stage_obj: object) -> bool:
    """Whether the stage object allows caching (``cacheable`` is not False)."""
    return getattr(stage_obj, "cacheable", True) is not False


def _stage_part(stage: PreparedStage) -> bytes | None:
    """The digest of the stage's own part of the key, or None when it cannot have one.

    None: the options hold a value with no stable encoding (an object that is neither
    JSON nor a function or class).
    """
    info = stage.info
    stage_obj = info.stage
    try:
        ref = stage.ref
    except ValueError:
        ref = type(stage_obj).__qualname__
    opts: Any = stage.options
    if not isinstance(opts, msgspec.Struct):
        opts = dict(opts or {})
        if info.options_type is None:
            defaults = _schema_defaults(stage_obj)
            if defaults:
                opts = {**defaults, **opts}
    try:
        options = _options_json.encode(opts)
    except (TypeError, NotImplementedError, msgspec.EncodeError, OverflowError) as exc:
        log.warning("stage %r is not cached: its options cannot be keyed (%s)", stage.label, exc)
        return None
    h = hashlib.sha256(KEY_FORMAT)
    version = str(getattr(stage_obj, "version", "1"))
    for part in (stage.label, ref, version, code_fingerprint(stage_obj)):
        _part(h, part.encode())
    _part(h, options)
    return h.digest()


def _schema_defaults(stage_obj: Stage) -> Mapping[str, Any] | None:
    try:
        schema = stage_obj.describe()
    except Exception:  # a describe() that fails is reported by validation, not here
        return None
    defaults = schema.get("defaults") if isinstance(schema, dict) else None
    return defaults if isinstance(defaults, dict) else None


def stage_key(stage_part: bytes, fields: Mapping[str, msgspec.Raw]) -> str:
    """Return the key of a stage (``stage_part``) given its input snapshot's ``fields``.

    ``fields`` is the snapshot decoded as ``dict[str, msgspec.Raw]``.
    """
    h = hashlib.sha256(stage_part)
    _part(h, fields.get("experiment_id") or b"")
    exp_raw = fields.get("experiment")
    exp = _raw_fields.decode(exp_raw) if exp_raw is not None else {}
    for name in _EXPERIMENT_FIELDS:
        _part(h, name.encode())
        _part(h, exp.get(name) or b"")
    for name in RESULT_FIELDS:
        _part(h, fields.get(name) or _EMPTY[name])
    tel = fields.get("telemetry_context")
    if tel is not None:
        seed = _telemetry.decode(tel).get("seed")
        if seed is not None:
            _part(h, b"seed")
            _part(h, _msgpack.encode(seed))
    return h.hexdigest()


def result_of(before: Mapping[str, msgspec.Raw], after: bytes) -> bytes | None:
    """Return the result to store for a stage that turned ``before`` into ``after``.

    ``before`` is the input snapshot's fields (as for :func:`stage_key`), ``after`` the
    output snapshot. None when the stage replaced the experiment (not cacheable).
    """
    out = _raw_fields.decode(after)
    if out.get("experiment") != before.get("experiment") or out.get("experiment_id") != before.get(
        "experiment_id"
    ):
        return None
    changed: dict[str, msgspec.Raw] = {}
    for name in RESULT_FIELDS:
        new = out.get(name)
        if new != before.get(name):
            changed[name] = new if new is not None else msgspec.Raw(_EMPTY[name])
    return _msgpack.encode(changed)


def apply_result(before: Mapping[str, msgspec.Raw], result: bytes) -> bytes:
    """Return the snapshot a hit leads to: ``before`` with ``result``'s fields replaced.

    Raises:
        ValueError: ``result`` is not a result this module stored.
    """
    try:
        changed = _raw_fields.decode(result)
    except msgspec.DecodeError as exc:
        raise ValueError(f"a cached result does not decode ({exc})") from exc
    merged = dict(before)
    for name, raw in changed.items():
        empty = _EMPTY.get(name)
        if empty is None:
            raise ValueError(f"a cached result holds field {name!r}, which is not a result's")
        if len(raw) == 1 and memoryview(raw) == empty:
            merged.pop(name, None)  # empty: left out, as encode_context does
        else:
            merged[name] = raw
    return _msgpack.encode(merged)


class CacheProbe:
    """A cached stage's lookup: its key, its parsed input, and the hit if there was one."""

    __slots__ = ("before", "hit", "key", "snapshot")

    def __init__(self, key: str, before: dict[str, msgspec.Raw]) -> None:
        self.key = key
        self.before = before
        #: The stored entry on a hit, else None.
        self.hit: CachedResult | None = None
        #: The snapshot after the stage on a hit, else None.
        self.snapshot: bytes | None = None


class StageCache:
    """The result cache of a runtime: the store holding the results, and run plans.

    ``store`` must have the cache methods of the Store protocol
    (``get_cached_result``, ``put_cached_result``...).
    """

    __slots__ = ("_plans", "now", "store")

    def __init__(self, store: Any, *, now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.now = now or (lambda: datetime.now(UTC))
        self._plans: IdentityMemo[Experiment, RunCache | None] = IdentityMemo(4096)

    def for_run(self, experiment: Experiment) -> RunCache | None:
        """Return the cache of a run of ``experiment``, or None when no stage is cached.

        Made once per Experiment object (a sweep's runs share their point's).
        """
        return self._plans.get(experiment, self._plan)

    def _plan(self, experiment: Experiment) -> RunCache | None:
        default = experiment.cache.default if experiment.cache is not None else False
        flags = tuple(
            sd.enabled and (sd.cache if sd.cache is not None else default)
            for sd in experiment.pipeline
        )
        return RunCache(self, flags) if any(flags) else None


class RunCache:
    """The result cache as one run uses it: which stages are cached, lookups, saves."""

    __slots__ = ("cache", "flags")

    def __init__(self, cache: StageCache, flags: tuple[bool, ...]) -> None:
        self.cache = cache
        #: Per pipeline index: whether the stage's definition asks for caching.
        self.flags = flags

    async def lookup(self, stage: PreparedStage, snapshot: bytes) -> CacheProbe | None:
        """Look the stage's result up for the input ``snapshot``.

        Returns None when the stage is not cacheable (its class opts out, or its options
        cannot be keyed) or the store failed (logged); else a probe, a hit when
        ``probe.snapshot`` is set.
        """
        if not stage_cacheable(stage.info.stage):
            return None
        # Not memoized: options are plain dicts a caller may change between runs.
        part = _stage_part(stage)
        if part is None:
            return None
        before = _raw_fields.decode(snapshot)
        probe = CacheProbe(stage_key(part, before), before)
        try:
            found = await self.cache.store.get_cached_result(probe.key)
        except Exception as exc:
            log.warning("stage %r: cache lookup failed, running it: %s", stage.label, exc)
            return None
        if found is not None:
            try:
                probe.snapshot = apply_result(before, found.result)
            except ValueError as exc:
                log.warning("stage %r: ignoring cached result %s: %s", stage.label, found.key, exc)
                return probe
            probe.hit = found
        return probe

    async def save(
        self, stage: PreparedStage, probe: CacheProbe, after: bytes, run_id: str
    ) -> None:
        """Store the result of a successful attempt that turned the probe's input into
        ``after`` (unless the key was stored meanwhile); store errors are logged."""
        result = result_of(probe.before, after)
        if result is None:
            log.info("stage %r replaced ctx.experiment; its result is not cached", stage.label)
            return
        record = CachedResult(
            key=probe.key,
            stage=stage.label,
            version=str(getattr(stage.info.stage, "version", "1")),
            code=code_fingerprint(stage.info.stage),
            result=result,
            size=len(result),
            run_id=run_id,
            created_at=self.cache.now(),
        )
        try:
            await self.cache.store.put_cached_result(record)
        except Exception as exc:
            log.warning("stage %r: could not store its result in the cache: %s", stage.label, exc)
