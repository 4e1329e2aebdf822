"""Hypothesis strategies for the IR and the Context.

Values stored under ``Any`` (options, metadata, assigns, metrics ...) are limited to what
survives both msgpack and JSON unchanged: ``None``, ``bool``, 64-bit ``int``, finite
``float``, ``str`` without lone surrogates, lists and ``str``-keyed dicts. Typed fields
(datetimes, nested Structs, literals) use their full range, since msgspec decodes them
back into their declared types.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from crucible_actors import (
    BackendRef,
    Backoff,
    Context,
    DatasetRef,
    Experiment,
    OutputSpec,
    ReliabilityConfig,
    StageDef,
    StatsConfig,
)
from crucible_actors._core._trace_chain import TraceChain, TraceEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "contexts",
    "data_values",
    "edits",
    "experiments",
    "json_values",
    "mutate",
    "stage_defs",
    "texts",
]

#: Text msgspec can encode: no lone surrogates.
_encodable_chars = st.characters(exclude_categories=["Cs"])
texts = st.text(alphabet=_encodable_chars, max_size=12)
_keys = st.text(alphabet=_encodable_chars, max_size=6)
_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    _floats,
    texts,
)

#: JSON-native values that round-trip through msgpack and JSON unchanged.
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
    ),
    max_leaves=8,
)
_json_dicts = st.dictionaries(_keys, json_values, max_size=4)

_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)
) | st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)
_aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)

_backoffs = st.builds(
    Backoff, initial=_positive, max=_positive, multiplier=_positive, jitter=st.booleans()
)


@st.composite
def stage_defs(draw: st.DrawFn) -> StageDef:
    """A StageDef naming a registered stage (``stage`` is left unset), any supervision."""
    return StageDef(
        name=draw(_names),
        options=draw(st.none() | _json_dicts),
        enabled=draw(st.booleans()),
        timeout=draw(st.none() | _positive),
        restart=draw(st.sampled_from(["temporary", "transient"])),
        max_restarts=draw(st.integers(min_value=0, max_value=100)),
        max_seconds=draw(_positive),
        backoff=draw(st.none() | _positive | _backoffs),
        retry_on=draw(st.lists(_names, max_size=3)),
        fail_on=draw(st.lists(_names, max_size=3)),
        isolation=draw(st.sampled_from(["inline", "thread", "process"])),
    )


_backends = st.builds(
    BackendRef,
    id=_names,
    profile=_names,
    options=_json_dicts,
    model_version=st.none() | texts,
    endpoint_url=st.none() | texts,
    deployment_id=st.none() | texts,
    fallback=json_values,
)
_datasets = st.builds(
    DatasetRef,
    name=_names,
    provider=st.none() | texts,
    split=_names,
    options=_json_dicts,
    version=st.none() | texts,
    format=st.none() | texts,
    schema=json_values,
)
_output_specs = st.builds(
    OutputSpec,
    name=_names,
    formats=st.lists(st.sampled_from(["markdown", "json", "html", "csv"]), max_size=4),
    sink=st.sampled_from(["file", "stdout"]),
    options=_json_dicts,
)
_stats = st.builds(
    StatsConfig,
    tests=st.lists(_names, max_size=3),
    alpha=_floats,
    confidence_level=_floats,
    effect_size_type=_names,
    multiple_testing_correction=st.none() | _names,
    bootstrap_iterations=st.integers(min_value=0, max_value=10**6),
    options=_json_dicts,
)
_reliability = st.builds(
    ReliabilityConfig,
    stats=st.none() | _stats,
    guardrails=st.none() | _json_dicts,
    drift=st.none() | _json_dicts,
)


@st.composite
def experiments(draw: st.DrawFn) -> Experiment:
    """An Experiment with one to three stages and any optional metadata."""
    return Experiment(
        id=draw(_names),
        pipeline=draw(st.lists(stage_defs(), min_size=1, max_size=3)),
        name=draw(st.none() | texts),
        description=draw(st.none() | texts),
        owner=draw(st.none() | texts),
        tags=draw(st.lists(texts, max_size=3)),
        metadata=draw(_json_dicts),
        backend=draw(st.none() | _backends),
        dataset=draw(st.none() | _datasets),
        reliability=draw(st.none() | _reliability),
        outputs=draw(st.lists(_output_specs, max_size=2)),
        experiment_type=draw(
            st.none() | st.sampled_from(["evaluation", "training", "comparison", "ablation"])
        ),
        model_version=draw(st.none() | texts),
        baseline=draw(json_values),
        created_at=draw(st.none() | _datetimes),
        updated_at=draw(st.none() | _datetimes),
        max_restarts=draw(st.none() | st.integers(min_value=0, max_value=100)),
        max_seconds=draw(_positive),
    )


_trace_events = st.builds(
    TraceEvent,
    id=_names,
    timestamp=_aware_datetimes,
    type=_names,
    decision=texts,
    reasoning=texts,
    alternatives=st.lists(texts, max_size=2),
    confidence=_floats,
    metadata=_json_dicts,
    parent_id=st.none() | _names,
    stage_id=st.none() | _names,
    experiment_id=st.none() | _names,
)
_traces = st.builds(
    TraceChain,
    id=_names,
    name=texts,
    events=st.lists(_trace_events, max_size=3),
    created_at=st.none() | _aware_datetimes,
    metadata=_json_dicts,
)


@st.composite
def contexts(draw: st.DrawFn) -> Context:
    """A Context with any metrics, outputs, artifacts, trace and assigns."""
    exp = draw(experiments())
    return Context(
        experiment_id=exp.id,
        run_id=draw(_names),
        experiment=exp,
        outputs=draw(st.lists(json_values, max_size=4)),
        metrics=draw(_json_dicts),
        artifacts=draw(_json_dicts),
        trace=draw(st.none() | _traces),
        telemetry_context=draw(_json_dicts),
        assigns=draw(_json_dicts),
    )


_hashable = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), _floats, texts
)

#: Values the data codec packs (issue 22): they must come back as the same type. Nested
#: tuples/sets/frozensets mixed with plain lists and dicts.
data_values: st.SearchStrategy[Any] = st.recursive(
    _hashable | st.binary(max_size=8),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
        st.tuples(children, children),
        st.sets(_hashable, max_size=4),
        st.frozensets(_hashable, max_size=4),
    ),
    max_leaves=12,
)

#: One edit of a byte string: (0 insert | 1 delete | 2 overwrite, position, bytes).
Edit = tuple[int, int, bytes]


def edits(
    *, max_at: int, max_chunk: int, specials: Sequence[bytes]
) -> st.SearchStrategy[list[Edit]]:
    """Return 1 to 4 edits for :func:`mutate`: random or ``specials`` chunks at any position.

    Positions wrap around the data's length, so ``max_at`` only sets how varied they are.
    """
    chunks = st.binary(min_size=1, max_size=max_chunk) | st.sampled_from(list(specials))
    return st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, max_at), chunks), min_size=1, max_size=4
    )


def mutate(data: bytes, ops: Sequence[Edit]) -> bytes:
    """Apply ``ops`` (from :func:`edits`) to ``data``: a valid document, slightly broken."""
    out = bytearray(data)
    for kind, pos, chunk in ops:
        at = pos % (len(out) + 1)
        if kind == 0:
            out[at:at] = chunk
        elif kind == 1:
            del out[at : at + len(chunk)]
        else:
            out[at : at + len(chunk)] = chunk
    return bytes(out)
