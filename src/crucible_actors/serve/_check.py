"""``POST /api/experiments/check``: an experiment file, parsed by the CLI's loader.

The dashboard sends the text of an experiment file (TOML, JSON or YAML) here instead of
parsing it in the browser, so a file means the same to the dashboard as to
``crucible-actors run``: TOML and YAML go through :func:`load_experiment` itself, JSON
through the service's JSON reader and :func:`experiment_from_mapping` (the loader's
second half), because a JSON document may also be a whole ``POST /api/runs`` body
(``{"experiment": {...}, "run_id": ...}``). The answer is the body of ``POST /api/runs``
that runs the experiment, or the loader's error: 422 ``InvalidExperiment`` with one
``details.errors`` entry per problem, each naming the field path.

Nothing runs and the registry is not consulted: the submission itself checks the stages
and their options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .._core import InvalidExperiment, MissingDependency, experiment_from_mapping, load_experiment
from ._errors import ApiError, api_error_from
from ._submit import check_envelope, decode_json, split_envelope

if TYPE_CHECKING:
    from ._submit import Limits

__all__ = ["MEDIA_TYPES", "check_document"]

#: The media types naming a format; any other is read as the CLI reads bytes (JSON when
#: the text starts with ``{`` or ``[``, else TOML).
MEDIA_TYPES = {
    "application/toml": "toml",
    "application/json": "json",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
}
_SOURCE = "request"


def check_document(body: bytes, media_type: str | None, limits: Limits) -> dict[str, Any]:
    """Parse an experiment file; return ``{"format", "submission"}`` for the answer.

    Raises:
        ApiError: 422 ``InvalidExperiment`` (the loader's errors), ``InvalidJSON`` or
            ``InvalidRequest`` (a bad JSON body or envelope); 415 for YAML on a server
            without PyYAML.
    """
    fmt = MEDIA_TYPES.get((media_type or "").split(";")[0].strip().lower())
    if fmt is None:
        fmt = "json" if body.lstrip()[:1] in (b"{", b"[") else "toml"
    if not body.strip():
        raise api_error_from(InvalidExperiment("the document is empty", source=_SOURCE))
    envelope: dict[str, Any] = {}
    try:
        if fmt == "json":
            data = decode_json(body, limits)
            raw = split_envelope(data)
            envelope = check_envelope(data)
            experiment = experiment_from_mapping(raw, source=_SOURCE)
        else:
            if fmt == "yaml":
                _refuse_aliases(body)
            experiment = load_experiment(body, format=fmt)
    except InvalidExperiment as exc:
        # The loader names bytes "<bytes>"; the page says where they came from.
        raise api_error_from(InvalidExperiment(exc.errors, source=_SOURCE)) from exc
    except MissingDependency as exc:
        raise ApiError(415, str(exc), type="UnsupportedMediaType") from exc
    submission = {"experiment": msgspec.to_builtins(experiment), **envelope}
    return {"format": fmt, "submission": submission}


def _refuse_aliases(body: bytes) -> None:
    """Refuse a YAML document with aliases (``*name``) before anything expands them.

    Nested aliases make a few hundred bytes stand for millions of values (the "billion
    laughs"), which loading and answering would walk: a file on the command line may do
    that to its own user, a request may not do it to the service.
    """
    try:
        import yaml
    except ImportError as exc:
        raise MissingDependency("pyyaml", "YAML experiment files", extra="yaml") from exc
    try:
        aliased = any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(body))
    except yaml.YAMLError:
        return  # not YAML: the loader says where
    if aliased:
        raise api_error_from(
            InvalidExperiment(
                "YAML aliases (*name) are not accepted by the service; write the values out",
                source=_SOURCE,
            )
        )
