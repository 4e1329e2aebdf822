"""The ``mlflow_log`` stage and the MLflow bridge: a run as an MLflow run (extra ``mlflow``).

:func:`log_run` writes one Context to an MLflow tracking server or local store:

- the MLflow experiment: ``experiment_id``, else ``experiment_name``, else the crucible
  experiment's id (created when missing, with ``artifact_location`` if given);
- the MLflow run, named ``run_name`` (default: the crucible run id) and tagged
  ``crucible.run_id``, so logging the same crucible run again (a restarted stage, a resumed
  run, :func:`log_handle` after the stage) updates that MLflow run instead of adding one;
- params: every stage's options, flattened with the stage name as prefix
  (``bench.tests``, ``data_checks.required_fields``; nested tables join with ``.``;
  non-string values as JSON; at most 6000 characters, MLflow's limit);
- metrics: the numbers of ``ctx.metrics`` (nested tables flattened with ``.``; a list of
  numbers becomes one metric with a step per value);
- bench results (``metrics["bench"]``): every figure as a metric
  (``bench.ttest.p_value``, ``bench.ttest.confidence_interval.low``,
  ``bench.effect_size.cohens_d``, ``bench.group_stats.<group>.mean``), and the verdicts as
  tags (``bench.ttest.significant``, ``bench.ttest.interpretation``, ``bench.groups``);
- artifacts: each ``ctx.artifacts`` entry whose ``location`` is a local file or directory
  (the ``report`` stage's files), plus ``crucible/experiment.json`` (the definition);
- status (``FINISHED``, ``FAILED``, ``KILLED``) and, when known, ``crucible.duration_s``.

``parent_run_id`` makes the MLflow run a child run (MLflow's ``mlflow.parentRunId`` tag),
for sweeps whose points are runs of their own; a Context may carry it as
``ctx.assigns["mlflow_parent_run_id"]`` too.

The stage logs the run as it stands when the stage runs, with status ``FINISHED``: put it
last (after ``report``, so the report files are logged). A stage does not know when its
run started, nor does it run when an earlier stage failed; :func:`log_handle`, called with
the handle of a finished run, logs the final status and the duration as well, for failed
and cancelled runs included; :func:`open_mlflow_bridge` does that for every run of a
runtime, the runtime-wide option. The MLflow client does blocking IO: the stage's ``run`` is
sync, so the runtime runs it in a worker thread, and :func:`log_handle` uses one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread
import msgspec

from .._core import MissingDependency, Stage, StageFailed
from .._core import telemetry as tel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ObjectReceiveStream
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._core import Context, RunHandle, Runtime

log = logging.getLogger("crucible_actors")

__all__ = [
    "MlflowLogOptions",
    "MlflowLogStage",
    "flatten_bench",
    "flatten_metrics",
    "flatten_params",
    "log_handle",
    "log_run",
    "open_mlflow_bridge",
]

#: MLflow's limits (``mlflow.utils.validation``): param values and keys, batch sizes.
MAX_PARAM_VALUE: Final = 6000
MAX_KEY: Final = 250
_BATCH_METRICS: Final = 1000
_BATCH_PARAMS: Final = 100
_BATCH_TAGS: Final = 100
#: Where a Context may carry the parent MLflow run (sweeps set it per point).
PARENT_ASSIGN: Final = "mlflow_parent_run_id"
_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9_\-. /:]")
# run statuses of the runtime -> MLflow run statuses
_STATUS: Final = {
    "completed": "FINISHED",
    "failed": "FAILED",
    "cancelled": "KILLED",
    "interrupted": "KILLED",
}


class MlflowLogOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options of the ``mlflow_log`` stage (see the module docstring).

    ``tracking_uri`` None means ``MLFLOW_TRACKING_URI``, else MLflow's default (a
    ``sqlite:///mlflow.db`` file in the working directory).
    """

    tracking_uri: str | None = None
    experiment_name: str | None = None
    experiment_id: str | None = None
    run_name: str | None = None
    parent_run_id: str | None = None
    artifact_location: str | None = None
    tags: dict[str, str] = {}
    log_artifacts: bool = True


def _require_mlflow() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MissingDependency("mlflow-skinny", feature="mlflow_log", extra="mlflow") from exc
    return MlflowClient


def _key(key: str) -> str:
    return _KEY_CHARS.sub("_", key)[:MAX_KEY]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text[:MAX_PARAM_VALUE]


def flatten_params(ctx: Context) -> dict[str, str]:
    """Return every stage's options as MLflow params, ``<stage>.<option>[.<key>...]``.

    A stage that appears twice gets ``<stage>.<position>`` as its prefix the second time.
    """
    params: dict[str, str] = {}
    seen: set[str] = set()
    for position, stage_def in enumerate(ctx.experiment.pipeline):
        label = stage_def.label
        prefix = label if label not in seen else f"{label}.{position}"
        seen.add(label)

        def walk(path: str, value: Any) -> None:
            if isinstance(value, Mapping) and value:
                for k, v in value.items():
                    walk(f"{path}.{k}", v)
            else:
                params[_key(path)] = _param_value(value)

        for name, value in (stage_def.options or {}).items():
            walk(f"{prefix}.{name}", value)
    return params


def _walk_numbers(
    path: str, value: Any, metrics: dict[str, list[float]], tags: dict[str, str] | None
) -> None:
    if _is_number(value):
        if math.isfinite(value):
            metrics[_key(path)] = [float(value)]
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _walk_numbers(f"{path}.{k}", v, metrics, tags)
    elif isinstance(value, list | tuple) and value and all(_is_number(v) for v in value):
        if tags is not None and len(value) == 2:
            # a [low, high] interval in bench results
            metrics[_key(f"{path}.low")] = [float(value[0])]
            metrics[_key(f"{path}.high")] = [float(value[1])]
        else:
            steps = [float(v) for v in value if math.isfinite(v)]
            if steps:
                metrics[_key(path)] = steps
    elif tags is not None and isinstance(value, bool):
        tags[_key(path)] = "true" if value else "false"
    elif tags is not None and isinstance(value, str):
        tags[_key(path)] = value[:MAX_PARAM_VALUE]


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, list[float]]:
    """Return the numbers of ``ctx.metrics`` as MLflow metric series (``bench`` excluded).

    A number is a series of one value; a list of numbers a series with a step per value;
    nested tables join their keys with ``.``. Other values (strings, NaN, lists of
    dicts) are left out.
    """
    found: dict[str, list[float]] = {}
    for key, value in metrics.items():
        if key != "bench":
            _walk_numbers(key, value, found, None)
    return found


def flatten_bench(bench: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Split a ``metrics["bench"]`` record into MLflow metrics and tags.

    Numbers become metrics ``bench.<test>.<figure>`` (intervals as ``.low``/``.high``);
    booleans and strings (``significant``, ``interpretation``) become tags; the group
    names, the correction and the alpha are tags too.
    """
    series: dict[str, list[float]] = {}
    tags: dict[str, str] = {}
    results = bench.get("results") or {}
    for test, entry in (results.get("test_results") or {}).items():
        if isinstance(entry, Mapping):
            entry = {k: v for k, v in entry.items() if k != "test"}
        _walk_numbers(f"bench.{test}", entry, series, tags)
    for key in ("effect_size",):
        if key in results:
            _walk_numbers(f"bench.{key}", results[key], series, tags)
    if "group_stats" in bench:
        _walk_numbers("bench.group_stats", bench["group_stats"], series, tags)
    if results.get("groups"):
        tags["bench.groups"] = ",".join(str(g) for g in results["groups"])
    for key in ("correction", "alpha"):
        if key in bench:
            tags[f"bench.{key}"] = str(bench[key])
    if "tests_run" in bench:
        tags["bench.tests_run"] = ",".join(str(t) for t in bench["tests_run"])
    return {k: v[0] for k, v in series.items()}, tags


def _local_artifacts(ctx: Context) -> list[str]:
    paths: list[str] = []
    for entry in ctx.artifacts.values():
        location = entry.get("location") if isinstance(entry, Mapping) else None
        if isinstance(location, str) and os.path.exists(location):
            paths.append(location)
    return paths


def _experiment_id(client: Any, ctx: Context, opts: MlflowLogOptions) -> str:
    from mlflow.exceptions import MlflowException

    if opts.experiment_id is not None:
        if client.get_experiment(opts.experiment_id) is None:  # pragma: no cover - raises
            raise ValueError(f"no MLflow experiment with id {opts.experiment_id!r}")
        return opts.experiment_id
    name = opts.experiment_name or ctx.experiment.id
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=opts.artifact_location))
    except MlflowException:
        # Another run created it first: use theirs.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _find_run(client: Any, experiment_id: str, run_id: str) -> Any:
    quoted = run_id.replace("\\", "\\\\").replace("'", "\\'")
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`crucible.run_id` = '{quoted}'", max_results=1
    )
    return runs[0] if runs else None


def log_run(
    ctx: Context,
    options: MlflowLogOptions | None = None,
    *,
    status: str = "FINISHED",
    duration: float | None = None,
    error: str | None = None,
) -> str:
    """Log ``ctx`` as an MLflow run and return the MLflow run id (blocking IO).

    ``status`` is an MLflow run status (``FINISHED``, ``FAILED``, ``KILLED``);
    ``duration`` (seconds) is logged as the ``crucible.duration_s`` metric and ``error``
    as the ``crucible.error`` tag. See the module docstring for what is logged.

    Raises:
        MissingDependency: mlflow is not installed (``pip install 'crucible-actors[mlflow]'``).
        mlflow.exceptions.MlflowException: the tracking store refused a write.
    """
    client_cls = _require_mlflow()
    from mlflow.entities import Metric, Param, RunTag

    opts = options if options is not None else MlflowLogOptions()
    client = client_cls(tracking_uri=opts.tracking_uri)
    experiment_id = _experiment_id(client, ctx, opts)
    parent = opts.parent_run_id or ctx.assigns.get(PARENT_ASSIGN)
    tags: dict[str, str] = {
        "crucible.run_id": ctx.run_id,
        "crucible.experiment_id": ctx.experiment.id,
        "mlflow.source.name": "crucible-actors",
        "mlflow.runName": opts.run_name or ctx.run_id,
        **{_key(k): str(v) for k, v in opts.tags.items()},
    }
    if ctx.experiment.tags:
        tags["crucible.experiment_tags"] = ",".join(ctx.experiment.tags)
    if parent is not None:
        tags["mlflow.parentRunId"] = str(parent)
    if error is not None:
        tags["crucible.error"] = error[:MAX_PARAM_VALUE]
    existing = _find_run(client, experiment_id, ctx.run_id)
    if existing is None:
        run = client.create_run(experiment_id, run_name=opts.run_name or ctx.run_id)
        mlflow_run_id = str(run.info.run_id)
        logged_params: Mapping[str, str] = {}
    else:
        mlflow_run_id = str(existing.info.run_id)
        logged_params = existing.data.params
    now_ms = int(time.time() * 1000)
    series = flatten_metrics(ctx.metrics)
    bench = ctx.metrics.get("bench")
    if isinstance(bench, Mapping):
        bench_metrics, bench_tags = flatten_bench(bench)
        series.update({k: [v] for k, v in bench_metrics.items()})
        tags.update(bench_tags)
    if duration is not None:
        series["crucible.duration_s"] = [float(duration)]
    # MLflow refuses to change a logged param: a re-log keeps the first values.
    params = [
        Param(k, v)
        for k, v in flatten_params(ctx).items()
        if k not in logged_params or logged_params[k] == v
    ]
    metrics = [
        Metric(key, value, now_ms, step)
        for key, values in series.items()
        for step, value in enumerate(values)
    ]
    tag_list = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, len(params), _BATCH_PARAMS):
        client.log_batch(mlflow_run_id, params=params[i : i + _BATCH_PARAMS])
    for i in range(0, len(metrics), _BATCH_METRICS):
        client.log_batch(mlflow_run_id, metrics=metrics[i : i + _BATCH_METRICS])
    for i in range(0, len(tag_list), _BATCH_TAGS):
        client.log_batch(mlflow_run_id, tags=tag_list[i : i + _BATCH_TAGS])
    if opts.log_artifacts:
        client.log_dict(
            mlflow_run_id,
            msgspec.to_builtins(ctx.experiment),
            "crucible/experiment.json",
        )
        for path in _local_artifacts(ctx):
            if os.path.isdir(path):
                client.log_artifacts(mlflow_run_id, path, os.path.basename(path))
            else:
                client.log_artifact(mlflow_run_id, path)
    client.set_terminated(mlflow_run_id, status=status, end_time=now_ms)
    return mlflow_run_id


async def log_handle(handle: RunHandle, options: MlflowLogOptions | None = None) -> str:
    """Log a finished run with its final status and duration; return the MLflow run id.

    For a completed run the final Context is logged; for a failed one the Context from
    before the failing stage (``StageFailed.context``) with the error; a cancelled or
    interrupted run is ``KILLED`` (with its definition's params only, when no Context is
    left). The MLflow client runs in a worker thread.

    Raises:
        ValueError: the run has not finished.
        MissingDependency: mlflow is not installed.
    """
    if not handle.done:
        raise ValueError(
            f"run {handle.run_id} is {handle.status.value}; log_handle needs a finished run "
            "(await handle.wait() first)"
        )
    ctx = handle.context
    err = handle.error
    if ctx is None and isinstance(err, StageFailed):
        ctx = err.context
    if ctx is None:
        # Cancelled or interrupted before a stage finished: the definition is all there is.
        from .._core import Context

        ctx = Context.new(handle.experiment, run_id=handle.run_id)
    duration = None
    if handle.started_at is not None and handle.finished_at is not None:
        duration = handle.finished_at - handle.started_at
    call = functools.partial(
        log_run,
        ctx,
        options,
        status=_STATUS.get(handle.status.value, "FAILED"),
        duration=duration,
        error=f"{type(err).__name__}: {err}" if err is not None else None,
    )
    return await anyio.to_thread.run_sync(call)


@contextlib.asynccontextmanager
async def open_mlflow_bridge(
    runtime: Runtime, options: MlflowLogOptions | None = None
) -> AsyncIterator[None]:
    """Log every run of ``runtime`` that ends inside the block with :func:`log_handle`.

    A runtime-wide alternative to the stage: failed and cancelled runs are logged too,
    with their status and duration. Runs are logged one at a time by a task of the block;
    leaving the block logs the runs that ended before it, then stops (open it inside
    ``open_runtime`` so it closes first). A run that cannot be logged is reported in the
    ``crucible_actors`` log and does not stop the bridge.

    Raises:
        MissingDependency: mlflow is not installed.
    """
    _require_mlflow()
    send: MemoryObjectSendStream[RunHandle]
    receive: MemoryObjectReceiveStream[RunHandle]
    send, receive = anyio.create_memory_object_stream(math.inf)
    handler_id = f"crucible_actors.mlflow_bridge.{uuid.uuid4().hex}"

    def on_end(name: str, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
        handle = runtime.get(str(metadata.get("run_id")))
        if handle is not None:
            with contextlib.suppress(anyio.ClosedResourceError):
                send.send_nowait(handle)

    tel.attach(handler_id, (tel.RUN_STOP, tel.RUN_EXCEPTION), on_end)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_log_each, receive, options)
            try:
                yield
            finally:
                tel.detach(handler_id)
                send.close()
    finally:
        tel.detach(handler_id)


async def _log_each(
    receive: ObjectReceiveStream[RunHandle], options: MlflowLogOptions | None
) -> None:
    async with receive:
        async for handle in receive:
            await handle.wait()
            try:
                await log_handle(handle, options)
            except Exception:
                log.exception("could not log run %s to MLflow", handle.run_id)


class MlflowLogStage(Stage):
    """Log the run so far as an MLflow run (extra ``mlflow``); see the module docstring.

    The MLflow run id is kept in ``ctx.assigns["mlflow_run_id"]``.

    Raises:
        MissingDependency: mlflow is not installed (``pip install 'crucible-actors[mlflow]'``).
    """

    name = "mlflow_log"
    description = "Log the run to MLflow: options as params, metrics, bench results, artifacts"
    Options = MlflowLogOptions
    # Logging to MLflow is the point: a cached result would skip it.
    cacheable = False

    def run(self, ctx: Context, opts: MlflowLogOptions) -> Context:
        """Log ``ctx`` to MLflow and record the MLflow run id in ``assigns``."""
        return ctx.assign("mlflow_run_id", log_run(ctx, opts))
