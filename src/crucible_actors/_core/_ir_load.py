"""Loading an experiment from TOML, JSON or YAML, or from a JSON-like mapping.

:func:`load_experiment` reads a file or bytes, detects the format, parses it and hands the
document to :func:`experiment_from_mapping`, which converts it into the IR
(:class:`~._ir.Experiment`); every error is an ``InvalidExperiment`` naming the source and
the field path. The IR Structs themselves know nothing of files.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ._errors import InvalidExperiment, MissingDependency
from ._ir import Experiment
from ._ir_refs import describe_validation_error
from ._ir_sweep import coerce_sweep

__all__ = ["experiment_from_mapping", "load_experiment"]


_SUFFIXES = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def _detect_format(name: str | None, data: bytes) -> str:
    if name:
        fmt = _SUFFIXES.get(Path(name).suffix.lower())
        if fmt is not None:
            return fmt
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        return "json"
    return "toml"


def _parse(data: bytes, fmt: str, source: str, *, guessed: bool = False) -> object:
    try:
        if fmt == "json":
            return msgspec.json.decode(data)
        if fmt == "toml":
            return msgspec.toml.decode(data)
        if fmt == "yaml":
            try:
                import yaml  # noqa: F401  (msgspec.yaml needs PyYAML)
            except ImportError as exc:
                raise MissingDependency("pyyaml", "YAML experiment files", extra="yaml") from exc
            return msgspec.yaml.decode(data)
    except msgspec.DecodeError as exc:
        hint = " (format guessed from the content; pass format= to name it)" if guessed else ""
        raise InvalidExperiment(f"not valid {fmt.upper()}{hint}: {exc}", source=source) from exc
    except RecursionError as exc:  # msgspec's JSON and tomllib recurse per nesting level
        raise InvalidExperiment(
            f"not valid {fmt.upper()}: nested too deeply to parse; flatten the structure",
            source=source,
        ) from exc
    raise InvalidExperiment(
        f"unknown format {fmt!r}; expected one of 'toml', 'json', 'yaml'", source=source
    )


def experiment_from_mapping(raw: object, *, source: str = "<experiment>") -> Experiment:
    """Build an :class:`Experiment` from decoded JSON-like data (``stages`` is an alias)."""
    if not isinstance(raw, dict):
        raise InvalidExperiment(
            f"expected a table/object at the top level, got {type(raw).__name__}", source=source
        )
    if "stages" in raw and "pipeline" not in raw:
        raw = {("pipeline" if k == "stages" else k): v for k, v in raw.items()}
    if raw.get("sweep") is not None:
        try:
            raw = {**raw, "sweep": msgspec.to_builtins(coerce_sweep(raw["sweep"]))}
        except InvalidExperiment as exc:
            raise InvalidExperiment(exc.errors, source=source) from exc
    try:
        exp = msgspec.convert(raw, Experiment, strict=False)
    except InvalidExperiment as exc:
        raise InvalidExperiment(exc.errors, source=source) from exc
    except msgspec.ValidationError as exc:
        raise InvalidExperiment(describe_validation_error(exc), source=source) from exc
    except RecursionError as exc:
        raise InvalidExperiment(
            "nested too deeply to load; flatten the structure", source=source
        ) from exc
    bad = _find_wide_int(raw)
    if bad is not None:
        raise InvalidExperiment(bad, source=source)
    return exp


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _find_wide_int(raw: object) -> str | None:
    """Return ``"path: ..."`` for the first int that msgpack cannot carry, else None.

    A run's Context carries the experiment as msgpack, whose integers are 64-bit: such a
    file would load and then fail every run at submission. Iterative (files may nest deep).
    """
    stack: list[tuple[str, object]] = [("", raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not _INT_MIN <= value <= _INT_MAX
        ):
            shown = str(value) if len(str(value)) <= 30 else f"{str(value)[:27]}..."
            return (
                f"{path}: integer {shown} is out of range; integers must fit in 64 bits "
                "(-2**63 .. 2**64-1), write larger numbers as floats or strings"
            )
    return None


def load_experiment(path_or_bytes: str | Path | bytes, format: str | None = None) -> Experiment:
    """Load an :class:`Experiment` from a TOML, JSON or YAML file, or from bytes.

    The format comes from ``format`` or the file suffix (bytes starting with ``{`` are JSON,
    otherwise TOML). ``stages`` is accepted as an alias of ``pipeline``.

    Raises:
        InvalidExperiment: the file is missing or unreadable, does not parse, or does not
            match the schema; the message names the file and the field path, e.g.
            ``pipeline[2].options: expected object, got array``.
        MissingDependency: a YAML file was given and PyYAML is not installed.
    """
    if isinstance(path_or_bytes, bytes):
        source, data = "<bytes>", path_or_bytes
    else:
        source = str(path_or_bytes)
        try:
            data = Path(path_or_bytes).read_bytes()
        except OSError as exc:
            raise InvalidExperiment(f"cannot read file: {exc.strerror}", source=source) from exc
    name = None if isinstance(path_or_bytes, bytes) else source
    fmt = format.lower() if format else _detect_format(name, data)
    guessed = format is None and (name is None or Path(name).suffix.lower() not in _SUFFIXES)
    return experiment_from_mapping(_parse(data, fmt, source, guessed=guessed), source=source)
