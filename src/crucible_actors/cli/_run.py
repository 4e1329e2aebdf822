"""``crucible-actors run FILE``: run one experiment file and print a summary.

Persists to the store named by ``--store``, ``CRUCIBLE_STORE_URL`` or the embedded
``./.crucible/crucible.db`` (printed once at the top), unless ``--no-persist``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._core._encoding import sanitize
from .._core._handle import RunHandle, RunStatus
from .._core._ir import load_experiment
from .._core._registry import Registry
from ..errors import CrucibleError, InvalidExperiment, StageFailed
from ._runs import store_url

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command."""
    p = sub.add_parser("run", help="run an experiment file (TOML, JSON or YAML)")
    p.add_argument("file", help="experiment file")
    p.add_argument("--assigns", metavar="FILE", help="JSON or TOML file seeding ctx.assigns")
    p.add_argument(
        "--validate-options",
        choices=("off", "warn", "error"),
        default="off",
        help="check stage options against their schemas before each stage",
    )
    p.add_argument("--run-id", help="run id (default: a new UUID4)")
    p.add_argument("--trace", action="store_true", help="record a decision trace")
    p.add_argument("--json", action="store_true", help="print the final Context as JSON")
    p.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: CRUCIBLE_STORE_URL or sqlite:///./.crucible/crucible.db)",
    )
    p.add_argument("--no-persist", action="store_true", help="do not record the run")
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster for isolation='ray' stages (default: RAY_ADDRESS, [ray] address "
        "in crucible.toml, else a local Ray started on first use)",
    )
    p.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    p.set_defaults(func=cmd_run)


def _load_assigns(path: str) -> dict[str, Any]:
    import msgspec

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidExperiment(f"cannot read assigns file: {exc.strerror}", source=path) from exc
    try:
        value = msgspec.toml.decode(data) if path.endswith(".toml") else msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidExperiment(f"assigns file does not parse: {exc}", source=path) from exc
    if not isinstance(value, dict):
        raise InvalidExperiment("assigns file must hold an object/table", source=path)
    return value


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _print_summary(handle: RunHandle) -> None:
    out = sys.stdout
    print(
        f"run {handle.run_id}  experiment {handle.experiment_id}  {handle.status.value}", file=out
    )
    print("stages:", file=out)
    by_stage: dict[int, list[Any]] = {}
    for rec in handle.attempts:
        by_stage.setdefault(rec.index, []).append(rec)
    for index, sd in enumerate(handle.experiment.pipeline):
        label = sd.label
        if not sd.enabled:
            print(f"  {index + 1}. {label:<20} skipped", file=out)
            continue
        recs = by_stage.get(index)
        if not recs:
            status = "not run" if index >= handle.resumed_from else "done earlier"
            print(f"  {index + 1}. {label:<20} {status}", file=out)
            continue
        last = recs[-1]
        total = sum((r.finished or r.started) - r.started for r in recs)
        tries = f"  ({len(recs)} attempts)" if len(recs) > 1 else ""
        err = f"  {last.error}" if last.error and last.status != "completed" else ""
        print(
            f"  {index + 1}. {label:<20} {last.status:<10} {_fmt_seconds(total)}{tries}{err}",
            file=out,
        )
    ctx = handle.context
    if ctx is not None and ctx.metrics:
        print("metrics:", file=out)
        for key, value in ctx.metrics.items():
            text = json.dumps(sanitize(value), sort_keys=True)
            if len(text) > 100:
                text = text[:97] + "..."
            print(f"  {key}: {text}", file=out)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the experiment file; 0 on success, 1 when the run failed, 2 on bad input."""
    exp_path = Path(args.file)
    experiment = load_experiment(exp_path)
    # Stages referenced as "module:attr" next to the experiment file import from there.
    sys.path.insert(0, str(exp_path.resolve().parent))
    assigns = _load_assigns(args.assigns) if args.assigns else None
    url = None if args.no_persist else store_url(args.store)
    if url is not None and not args.json:
        print(f"store: {url}")

    registry = Registry.default(cwd=exp_path.resolve().parent)

    async def main() -> RunHandle:
        from .._core._runtime import open_runtime

        async with open_runtime(registry=registry, store=url, ray_address=args.ray_address) as rt:
            handle = await rt.submit(
                experiment,
                run_id=args.run_id,
                assigns=assigns,
                validate_options=args.validate_options,
                enable_trace=args.trace,
            )
            await handle.wait()
            return handle

    try:
        handle = anyio.run(main, backend=args.backend)
    except KeyboardInterrupt:
        print("interrupted: the run was cancelled", file=sys.stderr)
        return 130
    if args.json:
        from .._core._encoding import context_to_json

        ctx = handle.context
        if ctx is not None:
            sys.stdout.write(context_to_json(ctx).decode() + "\n")
    else:
        _print_summary(handle)
    if handle.status is RunStatus.COMPLETED:
        return 0
    err = handle.error
    if isinstance(err, (StageFailed, CrucibleError)):
        print(f"error: {err}", file=sys.stderr)
    return 1
