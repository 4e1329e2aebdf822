"""Submissions: from the bytes of ``POST /api/runs`` to an Experiment the service may run.

The request is checked in the order that costs least first: the body size (413), the
JSON syntax and nesting depth, the envelope (``assigns``, ``run_id``,
``validate_options``, ``trace``), the pipeline length, stage import paths, the experiment
schema, and finally every stage name and option set against the service's registry (all
422, with every message). Nothing here imports code named by a request: a StageDef with a
``stage`` reference is refused, and names are looked up in the registry only.

:class:`IdempotencyKeys` remembers which run an ``Idempotency-Key`` created, so a retried
submission returns the same run.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import OrderedDict
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .._core import (
    CrucibleError,
    Experiment,
    InvalidOptions,
    UnknownStage,
    ValidateMode,
    experiment_from_mapping,
    stage_info,
    validate_options,
)
from ._errors import ApiError, api_error_from

if TYPE_CHECKING:
    from starlette.requests import Request

    from .._core import Registry

__all__ = [
    "ENVELOPE",
    "IdempotencyKeys",
    "Limits",
    "Submission",
    "check_envelope",
    "decode_json",
    "parse_submission",
    "read_body",
    "read_json_body",
    "split_envelope",
]

#: The keys of a submission that say how to run the experiment, not what it is.
ENVELOPE = ("assigns", "run_id", "validate_options", "trace")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_MODES = ("off", "warn", "error")
#: run ids derived from an Idempotency-Key live in this namespace (uuid5), so a key
#: retried after a restart of the service still finds its run in the store.
_KEY_NAMESPACE = uuid.UUID("6f1d2c1e-3d4b-5a8e-9c41-6b7f1e0a2d93")


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What one submission may cost: body bytes, JSON depth, pipeline length, queue."""

    max_body: int = 1 << 20
    max_depth: int = 32
    max_pipeline: int = 100
    max_queue: int = 100


class Submission(msgspec.Struct, kw_only=True):
    """A checked submission, ready for :meth:`Runtime.submit`."""

    experiment: Experiment
    assigns: dict[str, Any] | None = None
    run_id: str | None = None
    validate_options: ValidateMode = "off"
    trace: bool = True
    fingerprint: str = ""


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _invalid(message: str, *, type: str = "InvalidRequest", **details: Any) -> ApiError:
    entries = [{"stage": None, "message": message}]
    return ApiError(422, message, type=type, details={"errors": entries, **details})


async def read_body(request: Request, limits: Limits) -> bytes:
    """Read the request body, at most ``max_body`` bytes.

    Raises:
        ApiError: 413 for a body over the limit (announced or streamed).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body:
        raise _too_large(limits)
    chunks: list[bytes] = []
    size = 0
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > limits.max_body:
                raise _too_large(limits)
            chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes, limits: Limits) -> Any:
    """Decode a request body as JSON.

    Raises:
        ApiError: 422 for a body that is empty, not JSON, or nests deeper than
            ``max_depth``.
    """
    if not body.strip():
        raise _invalid("the request body is empty; send a JSON object", type="InvalidJSON")
    try:
        data = msgspec.json.decode(body)
    except RecursionError:
        raise _too_deep(limits) from None
    except msgspec.DecodeError as exc:
        raise _invalid(f"the request body is not valid JSON: {exc}", type="InvalidJSON") from exc
    if json_depth(data, limits.max_depth) > limits.max_depth:
        raise _too_deep(limits)
    return data


async def read_json_body(request: Request, limits: Limits) -> Any:
    """Read the request body (see :func:`read_body`) and decode it (:func:`decode_json`)."""
    return decode_json(await read_body(request, limits), limits)


def _too_large(limits: Limits) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than {limits.max_body} bytes",
        type="ContentTooLarge",
        details={"max_body": limits.max_body},
    )


def _too_deep(limits: Limits) -> ApiError:
    return _invalid(
        f"the JSON nests deeper than {limits.max_depth} levels",
        type="TooDeep",
        max_depth=limits.max_depth,
    )


def json_depth(value: Any, stop_after: int) -> int:
    """Return how deeply arrays and objects nest in ``value`` (a scalar is 0).

    Iterative, and stops counting once the depth exceeds ``stop_after``.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def fingerprint(data: Any) -> str:
    """Return a digest of the decoded body that ignores key order and whitespace."""
    return hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()


def parse_submission(data: Any, registry: Registry, limits: Limits) -> Submission:
    """Check a decoded body and return the submission it describes.

    The body is ``{"experiment": {...}, ...envelope}`` or the experiment object itself
    with the envelope keys alongside.

    Raises:
        ApiError: 422 with every problem found (``details.errors``).
    """
    raw = split_envelope(data)
    assigns, run_id, mode, trace = _envelope(data)
    experiment = _experiment(raw, limits)
    _check_stages(experiment, registry)
    return Submission(
        experiment=experiment,
        assigns=assigns,
        run_id=run_id,
        validate_options=mode,
        trace=trace,
        fingerprint=fingerprint(data),
    )


def split_envelope(data: Any) -> dict[str, Any]:
    """Return the experiment mapping of a submission body (envelope keys left out).

    The body is ``{"experiment": {...}, ...envelope}`` or the experiment object itself
    with the envelope keys alongside.

    Raises:
        ApiError: 422 when the body or its ``experiment`` is not an object, or unknown
            keys stand beside ``experiment``.
    """
    if not isinstance(data, dict):
        raise _invalid(f"expected a JSON object, got {_type_name(data)}")
    if "experiment" not in data:
        return {k: v for k, v in data.items() if k not in ENVELOPE}
    raw = data["experiment"]
    if not isinstance(raw, dict):
        raise _invalid(f"experiment: expected object, got {_type_name(raw)}")
    unknown = sorted(k for k in data if k != "experiment" and k not in ENVELOPE)
    if unknown:
        raise _invalid(
            f"unknown field(s) beside 'experiment': {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(ENVELOPE)}"[:500]
        )
    return raw


def check_envelope(data: dict[str, Any]) -> dict[str, Any]:
    """Return the envelope keys present in a submission body, once checked.

    Raises:
        ApiError: 422 naming every envelope key with a bad value.
    """
    _envelope(data)
    return {k: data[k] for k in ENVELOPE if k in data}


def _envelope(
    data: dict[str, Any],
) -> tuple[dict[str, Any] | None, str | None, ValidateMode, bool]:
    errors: list[str] = []
    assigns = data.get("assigns")
    if assigns is not None and not isinstance(assigns, dict):
        errors.append(f"assigns: expected object, got {_type_name(assigns)}")
    run_id = data.get("run_id")
    if run_id is not None and not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
        errors.append(
            "run_id: expected 1-128 characters from A-Z a-z 0-9 . _ : - "
            f"(not starting with a symbol), got {run_id!r}"[:300]
        )
    mode: Any = data.get("validate_options")  # checked against _MODES below
    if mode is None:
        mode = "off"
    if mode not in _MODES:
        errors.append(
            f"validate_options: expected one of 'off', 'warn', 'error', got {mode!r}"[:300]
        )
    trace = data.get("trace", True)
    if not isinstance(trace, bool):
        errors.append(f"trace: expected boolean, got {_type_name(trace)}")
    if errors:
        raise ApiError(
            422,
            "; ".join(errors),
            type="InvalidRequest",
            details={"errors": [{"stage": None, "message": e} for e in errors]},
        )
    return assigns, run_id, mode, trace


def _experiment(raw: dict[str, Any], limits: Limits) -> Experiment:
    errors: list[str] = []
    for key in ("pipeline", "stages"):
        pipeline = raw.get(key)
        if not isinstance(pipeline, list):
            continue
        if len(pipeline) > limits.max_pipeline:
            raise _invalid(
                f"{key}: {len(pipeline)} stages; the service accepts at most {limits.max_pipeline}",
                type="PipelineTooLong",
                max_pipeline=limits.max_pipeline,
            )
        for i, entry in enumerate(pipeline):
            if isinstance(entry, dict) and entry.get("stage") not in (None, ""):
                errors.append(_import_path_message(f"{key}[{i}]"))
    if errors:
        raise _rejected_import_paths(errors)
    try:
        exp = experiment_from_mapping(raw, source="request")
    except CrucibleError as exc:
        raise api_error_from(exc) from exc
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise _invalid(f"invalid experiment: {exc}", type="InvalidExperiment") from exc
    errors = [
        _import_path_message(f"pipeline[{i}]")
        for i, sd in enumerate(exp.pipeline)
        if sd.stage is not None and sd.stage != ""
    ]
    if errors:
        raise _rejected_import_paths(errors)
    return exp


def _import_path_message(where: str) -> str:
    return (
        f"{where}.stage: the service does not import stages named by a request; "
        "use the name of a registered stage (GET /api/stages)"
    )


def _rejected_import_paths(errors: list[str]) -> ApiError:
    return ApiError(
        422,
        "; ".join(errors),
        type="ImportPathRejected",
        details={"errors": [{"stage": None, "message": e} for e in errors]},
    )


def _check_stages(exp: Experiment, registry: Registry) -> None:
    """Resolve every stage through ``registry`` and validate its options; 422 on any error."""
    entries: list[dict[str, Any]] = []
    only_options = True
    for i, sd in enumerate(exp.pipeline):
        name = sd.name or ""
        label = sd.label
        if name not in registry:
            only_options = False
            error = UnknownStage(name, known=registry.names())
            entries.append({"stage": name, "message": f"pipeline[{i}]: {error}"})
            continue
        try:
            stage_obj = registry.resolve(name)
        except Exception as exc:  # a broken plug-in: the request cannot run; say why
            only_options = False
            entries.append(
                {"stage": name, "message": f"pipeline[{i}]: stage {name!r} cannot be loaded: {exc}"}
            )
            continue
        try:
            # What the runner's prepare_options(..., "error") checks, with the schema the
            # registry caches (describe() derives it afresh on every call).
            options = sd.options or {}
            problems = validate_options(options, registry.schema(name))
            if problems:
                raise InvalidOptions(label, problems)
            stage_info(stage_obj).convert_options(label, options)
        except InvalidOptions as exc:
            entries.extend(
                {"stage": label, "message": f"stage {label!r}: {message}"} for message in exc.errors
            )
        except Exception as exc:  # describe() or a check raised: report it, never a 500
            entries.append(
                {"stage": label, "message": f"stage {label!r}: options cannot be checked: {exc}"}
            )
    if entries:
        raise ApiError(
            422,
            "; ".join(e["message"] for e in entries),
            type="InvalidOptions" if only_options else "InvalidExperiment",
            details={"errors": entries},
        )


def derive_run_id(run_id: str | None, key: str | None) -> str | None:
    """Return the run id to use: the requested one, else one derived from the key."""
    if run_id is not None:
        return run_id
    if key is not None:
        return str(uuid.uuid5(_KEY_NAMESPACE, key))
    return None


def check_key(key: str | None) -> str | None:
    """Return a well-formed ``Idempotency-Key`` value.

    Raises:
        ApiError: 422 when the key is empty, too long or not printable ASCII.
    """
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise _invalid(
            "Idempotency-Key: expected 1-255 printable ASCII characters without spaces",
            type="InvalidIdempotencyKey",
        )
    return key


class _KeyEntry:
    __slots__ = ("fingerprint", "run_id", "settled")

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.run_id: str | None = None
        self.settled = anyio.Event()


class IdempotencyKeys:
    """Which run each recent ``Idempotency-Key`` created (the last ``capacity`` keys).

    A key first seen starts a submission; a retry while it is still being admitted waits
    for it; a retry after it is admitted gets its run id; a retry after it was refused
    starts afresh. A key reused with a different body is refused (422, as the IETF
    Idempotency-Key draft recommends).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._entries: OrderedDict[str, _KeyEntry] = OrderedDict()
        self._capacity = capacity

    async def claim(self, key: str, fingerprint: str) -> tuple[bool, str | None]:
        """Return ``(True, None)`` if the caller now owns ``key``, else ``(False, run_id)``.

        Raises:
            ApiError: 422 when the key was used with a different body.
        """
        while True:
            entry = self._entries.get(key)
            if entry is None:
                entry = _KeyEntry(fingerprint)
                self._entries[key] = entry
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
                return True, None
            if entry.fingerprint != fingerprint:
                raise _invalid(
                    "this Idempotency-Key was used with a different request body; "
                    "use a new key for a new submission",
                    type="IdempotencyKeyReused",
                )
            if entry.run_id is not None:
                return False, entry.run_id
            await entry.settled.wait()

    def settle(self, key: str, run_id: str | None) -> None:
        """Record the outcome of the owner's submission (None: refused, key freed)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if run_id is None:
            del self._entries[key]
        else:
            entry.run_id = run_id
        entry.settled.set()
