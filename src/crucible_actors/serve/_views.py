"""The JSON views of a run (RunSummary, RunDetail, RunEvent), from a handle or the store.

Pure functions: :mod:`._service` fetches the handle and records and picks the source. A
run this process executes is described from its :class:`RunHandle` until it has ended
(its status comes from the handle); once ended, the store holds the whole outcome, written
before the handle reports it, and every field comes from the store, so the live and the
stored views cannot disagree. Without a store, the handle is the only source.

Stage statuses in RunDetail: ``pending`` (not reached yet), ``running``, ``completed``,
``failed``, ``timeout``, ``cancelled`` (the last attempt's outcome), ``skipped``
(``enabled = false``) and ``not_run`` (the run ended before reaching it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._core import RunStatus, to_json_safe

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._core import (
        ArtifactRecord,
        AttemptRecord,
        Experiment,
        RunHandle,
        RunRecord,
        StageAttempt,
    )

__all__ = [
    "TERMINAL_EVENTS",
    "artifact_ids",
    "artifact_views",
    "assemble_detail",
    "attempt_from_handle",
    "attempt_from_store",
    "iso",
    "links",
    "live_status",
    "pipeline_of",
    "summary_from_handle",
    "summary_from_record",
    "synthesize_events",
]

TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})
TERMINAL_EVENTS = {
    "completed": "run_completed",
    "failed": "run_failed",
    "cancelled": "run_cancelled",
    "interrupted": "run_interrupted",
}


def iso(ts: datetime | None) -> str | None:
    """Return ``ts`` as an ISO 8601 string (UTC when naive), or None."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.isoformat()


def _iso_wall(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat()


def links(base: str, run_id: str) -> dict[str, str]:
    """Return the links of a run, under the app's mount point ``base``."""
    path = f"{base}/api/runs/{quote(run_id, safe='')}"
    return {
        "self": path,
        "events": f"{path}/events",
        "cancel": f"{path}/cancel",
        "trace": f"{path}/trace",
    }


def live_status(handle: RunHandle) -> str:
    """Return the status the API reports for a run this process executes.

    The handle turns terminal just before the store records the outcome; until the
    handle is done (outcome stored) the run is reported ``running``, so a client never
    sees a terminal status that the store does not have yet.
    """
    status = handle.status
    if status.terminal and not handle.done:
        return RunStatus.RUNNING.value
    return status.value


def _handle_clock(handle: RunHandle) -> tuple[float, float] | None:
    """Return ``(runtime time, wall time)`` of the run's first event, to convert clocks."""
    events = handle.events_nowait()
    if not events:
        return None
    first = events[0]
    return first.time, first.wall


def _wall_of(handle: RunHandle, t: float | None) -> float | None:
    anchor = _handle_clock(handle)
    if t is None or anchor is None:
        return None
    return anchor[1] + (t - anchor[0])


def summary_from_record(record: RunRecord) -> dict[str, Any]:
    """Return the RunSummary of a stored run."""
    duration = None
    if record.started_at is not None and record.finished_at is not None:
        duration = max(0.0, (record.finished_at - record.started_at).total_seconds())
    return {
        "id": record.id,
        "experiment_id": record.experiment_id,
        "status": record.status,
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "duration": duration,
        "failure": record.failure,
    }


def summary_from_handle(handle: RunHandle) -> dict[str, Any]:
    """Return the RunSummary of a run known only from its handle."""
    status = live_status(handle)
    finished = handle.finished_at if status in TERMINAL else None
    duration = None
    if handle.started_at is not None and finished is not None:
        duration = max(0.0, finished - handle.started_at)
    return {
        "id": handle.run_id,
        "experiment_id": handle.experiment_id,
        "status": status,
        "started_at": _iso_wall(_wall_of(handle, handle.started_at)),
        "finished_at": _iso_wall(_wall_of(handle, finished)),
        "duration": duration,
        "failure": to_json_safe(handle.failure, finite=True) if status in TERMINAL else None,
    }


def attempt_from_store(attempt: StageAttempt) -> dict[str, Any]:
    """Return the view of one stored attempt."""
    return {
        "attempt": attempt.attempt,
        "status": attempt.status,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "duration": attempt.duration,
        "error": attempt.error,
        "cache_hit": attempt.cache_hit,
    }


def attempt_from_handle(handle: RunHandle, record: AttemptRecord) -> dict[str, Any]:
    """Return the view of one attempt of a run this process executes."""
    duration = None if record.finished is None else max(0.0, record.finished - record.started)
    return {
        "attempt": record.attempt,
        "status": record.status,
        "started_at": _iso_wall(_wall_of(handle, record.started)),
        "finished_at": _iso_wall(_wall_of(handle, record.finished)),
        "duration": duration,
        "error": record.error,
        "cache_hit": record.cache_hit,
    }


def pipeline_of(experiment: Experiment) -> list[tuple[str, bool]]:
    """Return ``(label, enabled)`` for each stage of ``experiment``."""
    return [(sd.label, sd.enabled) for sd in experiment.pipeline]


def _stages(
    pipeline: Sequence[tuple[str, bool]],
    attempts: Sequence[tuple[int, dict[str, Any]]],
    status: str,
) -> list[dict[str, Any]]:
    by_index: dict[int, list[dict[str, Any]]] = {}
    for index, view in attempts:
        by_index.setdefault(index, []).append(view)
    count = max([len(pipeline), *(i + 1 for i in by_index)])
    out = []
    for index in range(count):
        label, enabled = pipeline[index] if index < len(pipeline) else (None, True)
        tries = by_index.get(index, [])
        if tries:
            stage_status = tries[-1]["status"]
        elif not enabled:
            stage_status = "skipped"
        else:
            stage_status = "not_run" if status in TERMINAL else "pending"
        out.append({"index": index, "name": label, "status": stage_status, "attempts": tries})
    return out


def artifact_ids(records: Sequence[ArtifactRecord]) -> list[str]:
    """Return the URL name of each artifact: its key (or name), made unique by position."""
    base = [r.key or r.name for r in records]
    seen: dict[str, int] = {}
    for ident in base:
        seen[ident] = seen.get(ident, 0) + 1
    return [ident if seen[ident] == 1 else f"{ident}~{i}" for i, ident in enumerate(base)]


def artifact_views(
    records: Sequence[ArtifactRecord], base: str, run_id: str
) -> list[dict[str, Any]]:
    """Return the RunDetail ``artifacts`` entries, each with the URL that serves it."""
    prefix = links(base, run_id)["self"]
    return [
        {
            "name": r.name,
            "type": r.type,
            "format": r.format,
            "url": f"{prefix}/artifacts/{quote(ident, safe='')}",
        }
        for r, ident in zip(records, artifact_ids(records), strict=True)
    ]


def assemble_detail(
    summary: dict[str, Any],
    *,
    pipeline: Sequence[tuple[str, bool]],
    attempts: Sequence[tuple[int, dict[str, Any]]],
    metrics: dict[str, Any],
    outputs: list[Any],
    artifacts: list[dict[str, Any]],
    has_trace: bool,
    experiment: dict[str, Any] | None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a RunDetail: the summary plus stages, metrics, outputs, artifacts, definition.

    ``provenance`` is the stored run's provenance view (the core's ``provenance_view``), or None.
    """
    return {
        **summary,
        "stages": _stages(pipeline, attempts, summary["status"]),
        "metrics": metrics,
        "outputs": outputs,
        "artifacts": artifacts,
        "has_trace": has_trace,
        "experiment": experiment,
        "provenance": provenance,
    }


def _event(
    seq: int,
    type_: str,
    run_id: str,
    wall: float,
    stage: str | None = None,
    index: int | None = None,
    attempt: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": type_,
        "run_id": run_id,
        "time": wall,
        "wall": wall,
        "stage": stage,
        "index": index,
        "attempt": attempt,
        "data": data or {},
    }


def synthesize_events(
    record: RunRecord,
    attempts: Sequence[StageAttempt],
    pipeline: Sequence[tuple[str, bool]],
) -> list[dict[str, Any]]:
    """Rebuild the RunEvents of a stored run (one this process does not hold).

    Same types and order as the live stream, ``time`` is wall time. For a run still
    going elsewhere, the outcome of its latest failed attempt is left out until it is
    known whether the stage restarts.
    """
    run_id = record.id
    out: list[dict[str, Any]] = []

    def add(type_: str, wall: float, *args: Any, **kw: Any) -> None:
        out.append(_event(len(out) + 1, type_, run_id, wall, *args, **kw))

    def ts(value: datetime | None, fallback: float) -> float:
        return value.timestamp() if value is not None else fallback

    start = ts(record.started_at, 0.0)
    add("run_started", start, data={"experiment_id": record.experiment_id})
    terminal = record.status in TERMINAL
    by_index: dict[int, list[StageAttempt]] = {}
    for a in attempts:
        by_index.setdefault(a.index, []).append(a)
    last_index = max([*by_index, -1])
    skipped = set(record.metadata.get("skipped_stages") or [])
    wall = start
    for index in range(max(len(pipeline), last_index + 1)):
        label, enabled = pipeline[index] if index < len(pipeline) else (None, True)
        tries = by_index.get(index, [])
        if not tries:
            if (not enabled or label in skipped) and (terminal or index < last_index):
                add("stage_skipped", wall, label, index)
            continue
        for n, a in enumerate(tries):
            wall = ts(a.started_at, wall)
            if a.cache_hit:  # the stage's result came from the cache: it did not run
                wall = ts(a.finished_at, wall)
                add("stage_cached", wall, a.stage, index, a.attempt, {"duration": a.duration})
                continue
            add("stage_started", wall, a.stage, index, a.attempt)
            end = ts(a.finished_at, wall)
            last = n == len(tries) - 1
            if a.status == "completed":
                add("stage_completed", end, a.stage, index, a.attempt, {"duration": a.duration})
                wall = end
                continue
            if a.status == "timeout":
                add("stage_timeout", end, a.stage, index, a.attempt)
            if a.status in ("failed", "timeout"):
                if not last:
                    data = {"after": a.error, "delay": None}
                    add("stage_restarted", end, a.stage, index, a.attempt + 1, data)
                elif terminal:
                    add("stage_failed", end, a.stage, index, a.attempt, {"error": a.error})
            wall = end
    if terminal:
        end = ts(record.finished_at, wall)
        outcome: dict[str, Any] = {"status": record.status}
        duration = summary_from_record(record)["duration"]
        if duration is not None:
            outcome["duration"] = duration
        if record.failure:
            outcome["error"] = record.failure.get("message")
        add(TERMINAL_EVENTS[record.status], end, data=outcome)
    return out
