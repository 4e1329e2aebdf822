"""The ``report`` stage: render the run for each ``OutputSpec`` of the experiment.

Formats: ``markdown``, ``json``, ``html``, ``csv``. Sinks: ``stdout``
prints ``== name (format) ==`` and the body (CrucibleFramework's layout); ``file`` writes
``{dir}/{experiment_id}-{run_id}-{name}.{ext}``, where ``dir`` is the spec's ``dir``
option, else the stage option ``output_dir`` (default ``reports``). Each format has its
own extension, so the files of one spec never overwrite each other; characters outside
``[A-Za-z0-9._-]`` in the name parts become ``_``, so a name cannot escape ``dir``.

Each written file is recorded in ``ctx.artifacts["{name}.{format}"]`` as ``{"name",
"type": "report", "location", "format"}`` (the shape the store adapter turns into artifact
rows), and ``{"name", "rendered": [{"format", "path" | "body"}]}`` is appended to
``ctx.outputs`` per spec. Every spec is checked before anything is written.

The stage's ``run`` is sync: the runtime runs it in a worker thread, so the file writes
never block the event loop.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
import msgspec.structs

from .._core import Stage
from ._render import EXTENSIONS, RENDERERS

if TYPE_CHECKING:
    from .._core import Context, OutputSpec

__all__ = ["FORMATS", "SINKS", "ReportOptions", "ReportStage", "report_path"]

FORMATS: Final = ("markdown", "json", "html", "csv")
SINKS: Final = ("file", "stdout")
DEFAULT_DIR: Final = "reports"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ReportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options of the ``report`` stage (each field's ``Meta`` description says what it does)."""

    output_dir: Annotated[
        str,
        msgspec.Meta(
            description="directory the file sinks write to when the output has no dir option"
        ),
    ] = DEFAULT_DIR


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part) or "_"


def report_path(ctx: Context, spec: OutputSpec, fmt: str, output_dir: str = DEFAULT_DIR) -> Path:
    """Return the file a ``file`` sink writes for ``spec`` in format ``fmt``."""
    directory = spec.options.get("dir") or output_dir
    stem = "-".join(_safe(p) for p in (ctx.experiment_id, ctx.run_id, spec.name))
    return Path(str(directory)) / f"{stem}.{EXTENSIONS[fmt]}"


def _plan(ctx: Context, output_dir: str) -> list[tuple[OutputSpec, list[str]]]:
    """Check every spec and return the formats to render per spec (duplicates dropped).

    Raises:
        ValueError: an unknown format or sink, or two file outputs with the same path.
    """
    plan = []
    paths: dict[Path, str] = {}
    for spec in ctx.experiment.outputs:
        formats = list(dict.fromkeys(spec.formats))
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise ValueError(
                f"output {spec.name!r}: unknown format(s) {', '.join(map(repr, unknown))}; "
                f"expected any of: {', '.join(FORMATS)}"
            )
        if spec.sink not in SINKS:
            raise ValueError(
                f"output {spec.name!r}: unknown sink {spec.sink!r}; "
                f"expected one of: {', '.join(SINKS)}"
            )
        if spec.sink == "file":
            for fmt in formats:
                path = report_path(ctx, spec, fmt, output_dir)
                if path in paths:
                    raise ValueError(
                        f"outputs {paths[path]!r} and {spec.name!r} would both write {path}; "
                        "give each OutputSpec a distinct name"
                    )
                paths[path] = spec.name
        plan.append((spec, formats))
    return plan


def _write(path: Path, body: str) -> None:
    """Write ``body`` to ``path`` atomically (a crash leaves no half-written report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)


class ReportStage(Stage):
    """Render reports for ``experiment.outputs``; see the module docstring.

    Raises:
        ValueError: an output names an unknown format or sink, or two outputs collide.
        OSError: a report file cannot be written.
    """

    name = "report"
    description = "Emits reports for experiment outputs and records artifacts"
    Options = ReportOptions
    # It writes files (a side effect a cached result would skip).
    cacheable = False

    def run(self, ctx: Context, opts: ReportOptions) -> Context:
        """Render and deliver every output; return the Context with outputs and artifacts."""
        plan = _plan(ctx, opts.output_dir)
        bodies: dict[str, str] = {}
        outputs: list[dict[str, Any]] = []
        artifacts: dict[str, Any] = {}
        for spec, formats in plan:
            rendered: list[dict[str, Any]] = []
            for fmt in formats:
                if fmt not in bodies:
                    bodies[fmt] = RENDERERS[fmt](ctx)
                body = bodies[fmt]
                if spec.sink == "stdout":
                    sys.stdout.write(f"== {spec.name} ({fmt}) ==\n{body}")
                    if not body.endswith("\n"):
                        sys.stdout.write("\n")
                    sys.stdout.flush()
                    rendered.append({"format": fmt, "body": body})
                    continue
                path = report_path(ctx, spec, fmt, opts.output_dir)
                _write(path, body)
                location = os.path.abspath(path)
                rendered.append({"format": fmt, "path": location})
                artifacts[f"{spec.name}.{fmt}"] = {
                    "name": spec.name,
                    "type": "report",
                    "location": location,
                    "format": fmt,
                }
            outputs.append({"name": spec.name, "rendered": rendered})
        return msgspec.structs.replace(
            ctx,
            outputs=[*ctx.outputs, *outputs],
            artifacts={**ctx.artifacts, **artifacts},
        )
