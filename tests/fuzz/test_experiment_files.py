"""Fuzzing ``load_experiment`` with experiment files in TOML, JSON and YAML.

Generated documents (deep nesting, huge numbers, NaN and infinities, control characters,
unicode names) and byte-level mutations of valid files (truncated, spliced, non-UTF-8) are
written to a file and loaded. The loader either returns an Experiment that a run can
actually carry (its Context encodes, its supervision numbers are usable) or raises
:class:`InvalidExperiment` naming the file; a single bad field in a valid file is reported
at its field path. Budget: ``tests/fuzz/_budget.py``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz._budget import fuzz_settings
from tests.strategies import edits, mutate

from crucible_actors import Context, Experiment, InvalidExperiment, load_experiment
from crucible_actors._core._encoding import encode_context

if TYPE_CHECKING:
    from pathlib import Path

FORMATS = ("toml", "json", "yaml")

# -- serializers (TOML by hand: the standard library only reads it) ------------------------


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_str(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(type(value))


def _dump(doc: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if fmt == "yaml":
        return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    lines = [f"{_toml_str(k)} = {_toml_value(v)}" for k, v in doc.items() if v is not None]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


# -- strategies ------------------------------------------------------------------------------

_chars = st.characters(exclude_categories=["Cs"])
_wild_text = st.text(alphabet=_chars, max_size=16) | st.sampled_from(
    ["", "\x00", "\x1b[31m", "\u202e", "名前", "é", "\U0001f600", "a\nb", "\x7f", "  "]
)
_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**40]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, 5e-324]),
)
_scalars = st.none() | st.booleans() | _numbers | _wild_text
_values = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_wild_text, kids, max_size=4),
    max_leaves=12,
)

_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["echo", "bench", "名前", ""]) | _wild_text,
    "stage": st.sampled_from(["pkg.mod:attr", "os:system", ":", ""]) | _wild_text,
    "options": st.dictionaries(_wild_text, _values, max_size=4) | _values,
    "enabled": st.booleans() | _values,
    "timeout": _numbers | _values,
    "restart": st.sampled_from(["temporary", "transient", "permanent"]) | _values,
    "max_restarts": _numbers | _values,
    "max_seconds": _numbers | _values,
    "backoff": _numbers
    | st.fixed_dictionaries({}, optional=dict.fromkeys(("initial", "max", "multiplier"), _numbers))
    | _values,
    "retry_on": st.lists(_wild_text, max_size=3) | _values,
    "isolation": st.sampled_from(["inline", "thread", "process", "gpu", "a gpu"]) | _values,
}


@st.composite
def _stage_docs(draw: st.DrawFn) -> dict[str, Any]:
    fields = draw(st.lists(st.sampled_from(sorted(_FIELD_VALUES)), unique=True, max_size=6))
    doc = {f: draw(_FIELD_VALUES[f]) for f in fields}
    doc.update(draw(st.dictionaries(_wild_text, _values, max_size=2)))
    return doc


@st.composite
def _deep(draw: st.DrawFn) -> Any:
    value: Any = draw(_scalars.filter(lambda v: v is not None))
    for _ in range(draw(st.integers(min_value=1, max_value=250))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """An experiment-shaped mapping with arbitrary, often wrong, values."""
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["id"] = draw(_wild_text | _values)
    key = draw(st.sampled_from(["pipeline", "stages", "pipe"]))
    doc[key] = draw(st.lists(_stage_docs(), max_size=3) | _values)
    for field in ("metadata", "tags", "max_restarts", "max_seconds", "created_at"):
        if draw(st.booleans()):
            doc[field] = draw(_values | _deep())
    return doc


_mutations = edits(
    max_at=10_000,
    max_chunk=4,
    specials=[b"\xff", b"\xc3", b"\x00", b"[", b"{", b'"', b"\n", b"]]", b"---"],
)

VALID = {
    "id": "fuzz",
    "name": "Fuzz 名前",
    "tags": ["a", "b"],
    "pipeline": [
        {"name": "echo", "timeout": 5.0, "restart": "transient", "max_restarts": 2},
        {"name": "bench", "options": {"tests": ["ttest"], "alpha": 0.05}, "backoff": 0.5},
    ],
}

# -- the properties --------------------------------------------------------------------------


def _check(path: Path, fmt: str) -> None:
    """Load ``path``: either a usable Experiment or InvalidExperiment naming the file."""
    try:
        exp = load_experiment(path, format=fmt if fmt != "guess" else None)
    except InvalidExperiment as exc:
        error = exc
    else:
        _check_usable(exp)
        return
    assert error.source == str(path)
    assert str(error).startswith(f"{path}: invalid experiment: ")
    assert error.errors
    assert all(isinstance(e, str) and e for e in error.errors)


def _check_usable(exp: Experiment) -> None:
    assert isinstance(exp, Experiment)
    assert exp.pipeline
    for stage_def in exp.pipeline:
        for number in (stage_def.timeout, stage_def.max_seconds):
            assert number is None or number > 0, stage_def
        assert stage_def.max_restarts >= 0
    assert exp.max_seconds > 0
    # what loads must be something a run can carry: the Context encodes
    encode_context(Context.new(exp, run_id="fuzz"))
    msgspec.json.encode(exp)


@pytest.mark.slow
@fuzz_settings(60)
@given(doc=documents(), fmt=st.sampled_from(FORMATS))
def test_generated_documents_load_or_fail_naming_the_file(
    tmp_path: Path, doc: dict[str, Any], fmt: str
) -> None:
    path = tmp_path / f"exp.{fmt}"
    path.write_bytes(_dump(doc, fmt))
    _check(path, fmt)


@fuzz_settings(60)
@given(fmt=st.sampled_from(FORMATS), ops=_mutations, guess=st.booleans())
def test_mutated_files_load_or_fail_naming_the_file(
    tmp_path: Path, fmt: str, ops: list[tuple[int, int, bytes]], guess: bool
) -> None:
    path = tmp_path / ("exp.txt" if guess else f"exp.{fmt}")
    path.write_bytes(mutate(_dump(VALID, fmt), ops))
    _check(path, "guess" if guess else fmt)


@fuzz_settings(30)
@given(fmt=st.sampled_from(FORMATS), depth=st.integers(min_value=1, max_value=20_000))
def test_deeply_nested_options_fail_cleanly(tmp_path: Path, fmt: str, depth: int) -> None:
    nested = "[" * depth + "1" + "]" * depth
    if fmt == "json":
        data = '{"id": "x", "pipeline": [{"name": "a", "options": {"k": ' + nested + "}}]}"
    elif fmt == "toml":
        data = 'id = "x"\n[[pipeline]]\nname = "a"\noptions = {k = ' + nested + "}"
    else:
        data = "id: x\npipeline:\n- name: a\n  options: {k: " + nested + "}"
    path = tmp_path / f"exp.{fmt}"
    path.write_text(data)
    _check(path, fmt)


# One bad value at a known place in a valid file: the message names that field path.
_FAULTS: list[tuple[str, str, Any, str]] = [
    ("pipeline", "timeout", "soon", "pipeline[1].timeout"),
    ("pipeline", "timeout", -1, "pipeline[1]: timeout must be > 0"),
    ("pipeline", "timeout", math.nan, "pipeline[1]: timeout must be > 0"),
    ("pipeline", "max_seconds", math.nan, "pipeline[1]: max_seconds must be > 0"),
    ("pipeline", "max_seconds", 0, "pipeline[1]: max_seconds must be > 0"),
    ("pipeline", "max_restarts", -2, "pipeline[1]: max_restarts must be >= 0"),
    ("pipeline", "max_restarts", 2**70, "pipeline[1].max_restarts: integer"),
    ("pipeline", "options", [1, 2], "pipeline[1].options"),
    # Any executor's name loads (whether one is registered is checked at submit); a
    # value that cannot be a name does not.
    ("pipeline", "isolation", "a gpu", "pipeline[1]: stage 'bench': isolation must be an executor"),
    ("pipeline", "isolation", "", "pipeline[1]: stage 'bench': isolation must be"),
    ("pipeline", "isolation", 3, "pipeline[1].isolation: expected str, got int"),
    ("pipeline", "retry_on", [1], "pipeline[1].retry_on[0]"),
    ("pipeline", "backoff", {"initial": "x"}, "pipeline[1].backoff.initial"),
    ("pipeline", "backoff", {"initial": math.nan}, "pipeline[1].backoff: initial must be"),
    ("pipeline", "backoff", -1.0, "pipeline[1]: backoff must be"),
    ("pipeline", "options", {"big": 10**30}, "pipeline[1].options.big: integer"),
    ("", "max_seconds", math.inf * 0, "max_seconds must be > 0"),
    ("", "tags", [1], "tags[0]"),
]


def _finite(value: Any) -> bool:
    return all(math.isfinite(v) for v in _leaves(value) if isinstance(v, float))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    return [value]


@pytest.mark.parametrize(
    ("fmt", "where", "field", "value", "expected"),
    # JSON has no NaN: those faults go in TOML and YAML files only
    [(fmt, *f) for f in _FAULTS for fmt in FORMATS if fmt != "json" or _finite(f[2])],
)
def test_one_bad_field_is_reported_at_its_path(
    tmp_path: Path, fmt: str, where: str, field: str, value: Any, expected: str
) -> None:
    doc = json.loads(json.dumps(VALID))
    (doc["pipeline"][1] if where else doc)[field] = value
    path = tmp_path / f"exp.{fmt}"
    path.write_bytes(_dump(doc, fmt))
    with pytest.raises(InvalidExperiment) as info:
        load_experiment(path)
    assert info.value.source == str(path)
    assert expected in str(info.value), str(info.value)
