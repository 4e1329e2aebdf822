"""The service behind the routes: submit, look up, list, cancel and follow runs.

:class:`Service` holds the runtime, the store and the registry of one app. Runs this
process executes are read from their :class:`RunHandle` (live status), every other run
from the store (history); :mod:`._views` turns either into the API's JSON. Submission
goes through admission control: at most ``max_queue`` submissions wait for a slot of
``max_concurrent_runs`` (beyond that: 429), and ``Idempotency-Key`` retries return the
run the key created.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import anyio
import msgspec

from .._core import (
    RUN_STATUSES,
    CrucibleError,
    RunNotFound,
    RunStillRunning,
    StoreError,
    TraceChain,
    TraceEvent,
    artifacts_from_context,
    decode_checkpoint,
    experiment_from_mapping,
    load_definitions,
    load_provenance,
    run_columns,
    stage_ref,
    to_json_safe,
)
from ._errors import ApiError, api_error_from
from ._events import live_events, resumed_events, stored_events
from ._metrics import Metrics
from ._results import (
    MAX_SCAN,
    RUN_FIELDS,
    Filter,
    Results,
    available_columns,
    matches,
    page_outputs,
    sort_key,
)
from ._submit import IdempotencyKeys, Limits, Submission, derive_run_id
from ._views import (
    TERMINAL,
    artifact_ids,
    artifact_views,
    assemble_detail,
    attempt_from_handle,
    attempt_from_store,
    links,
    live_status,
    pipeline_of,
    summary_from_handle,
    summary_from_record,
    synthesize_events,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from .._core import (
        ArtifactRecord,
        Context,
        Experiment,
        Registry,
        RunHandle,
        RunRecord,
        Runtime,
        Store,
    )

__all__ = ["Service"]

log = logging.getLogger("crucible_actors.serve")

#: Runs read per store query while a sorted or filtered list scans.
_SCAN_BATCH = 1000


class Service:
    """The state of one app: runtime, store, registry, limits, metrics and keys."""

    def __init__(
        self,
        *,
        runtime: Runtime | None,
        registry: Registry | None,
        store: Store | None,
        limits: Limits,
        poll_interval: float = 1.0,
        cancel_wait: float = 10.0,
        keepalive: float = 15.0,
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        self.store = store
        self.limits = limits
        self.poll_interval = poll_interval
        self.cancel_wait = cancel_wait
        self.keepalive = keepalive
        self.metrics = Metrics()
        self.keys = IdempotencyKeys()
        self.results = Results()
        self._inflight: set[str] = set()
        self._closing: anyio.Event | None = None  # made in the server's loop, when needed
        if runtime is not None:
            self.metrics.attach(runtime)

    # -- wiring -----------------------------------------------------------------------

    def bind(self, runtime: Runtime | None) -> None:
        """Use ``runtime`` (opened by the app's lifespan), or none once it closed."""
        self.runtime = runtime
        if runtime is None:
            self.metrics.detach()
            return
        self.registry = runtime.registry
        self.store = getattr(runtime, "store", None)
        self.metrics.attach(runtime)

    def close_streams(self) -> None:
        """End every open event stream now, and the ones opened later at once.

        Called when the server starts to stop: a stream would otherwise hold the graceful
        close until its timeout cancels the connection. Clients see the stream end before
        the run did and reconnect with ``Last-Event-ID`` once the service is back.
        """
        if self._closing is None:
            self._closing = anyio.Event()
        self._closing.set()

    async def wait_closing(self) -> None:
        """Wait until :meth:`close_streams` is called."""
        if self._closing is None:
            self._closing = anyio.Event()
        await self._closing.wait()

    @property
    def rt(self) -> Runtime:
        """The runtime; 503 before the app's lifespan has opened it."""
        if self.runtime is None:
            raise ApiError(
                503,
                "the service has not started: run the app's lifespan, or pass an open "
                "runtime to create_app(runtime=...)",
                type="NotStarted",
            )
        return self.runtime

    @property
    def reg(self) -> Registry:
        """The registry stages are resolved through."""
        return self.registry if self.registry is not None else self.rt.registry

    # -- lookups ----------------------------------------------------------------------

    async def lookup(self, run_id: str) -> tuple[RunHandle | None, RunRecord | None]:
        """Return the run's handle (if this process holds it) and its stored record."""
        handle = self.runtime.get(run_id) if self.runtime is not None else None
        record = None
        if self.store is not None:
            try:
                record = await self.store.get_run(run_id)
            except RunNotFound:
                record = None
        return handle, record

    async def _found(self, run_id: str) -> tuple[RunHandle | None, RunRecord | None]:
        handle, record = await self.lookup(run_id)
        if handle is None and record is None:
            raise ApiError(
                404, f"no run with id {run_id!r}", type="RunNotFound", details={"run_id": run_id}
            )
        return handle, record

    async def summary(self, run_id: str) -> dict[str, Any]:
        """Return the RunSummary of ``run_id`` (404 when unknown)."""
        handle, record = await self._found(run_id)
        return self._summary(handle, record)

    @staticmethod
    def _summary(handle: RunHandle | None, record: RunRecord | None) -> dict[str, Any]:
        if record is None:
            assert handle is not None
            return summary_from_handle(handle)
        summary = summary_from_record(record)
        if handle is not None and not handle.done:
            summary["status"] = live_status(handle)
        return summary

    async def _stored_context(self, run_id: str) -> Context | None:
        assert self.store is not None
        checkpoint = await self.store.load_checkpoint(run_id)
        if checkpoint is None:
            return None
        try:
            return decode_checkpoint(
                checkpoint, store=self.store.name, blobs=getattr(self.store, "blobs", None)
            )
        except StoreError as exc:
            log.warning("run %s: %s", run_id, exc)
            return None

    async def detail(self, run_id: str, base: str) -> dict[str, Any]:
        """Return the RunDetail of ``run_id`` (404 when unknown)."""
        handle, record = await self._found(run_id)
        summary = self._summary(handle, record)
        if record is None:
            assert handle is not None
            ctx = handle.context if handle.done else None
            records = artifacts_from_context(ctx) if ctx is not None else []
            trace = ctx.trace if ctx is not None else None
            summary["sweep_id"] = _handle_sweep(handle)
            return assemble_detail(
                summary,
                pipeline=pipeline_of(handle.experiment),
                attempts=[(r.index, attempt_from_handle(handle, r)) for r in handle.attempts],
                metrics=to_json_safe(ctx.metrics, finite=True) if ctx is not None else {},
                outputs=to_json_safe(ctx.outputs, finite=True) if ctx is not None else [],
                artifacts=artifact_views(records, base, run_id),
                has_trace=trace is not None and bool(trace.events),
                experiment=to_json_safe(handle.experiment, finite=True),
            )
        assert self.store is not None
        stored_attempts = await self.store.list_attempts(run_id)
        point = await self.results.sweep_of(self.store, run_id)
        summary["sweep_id"] = point.sweep_id if point is not None else None
        ctx = await self._stored_context(run_id)
        if handle is not None and not handle.done:
            # Live: attempts from the handle; those of stages finished before a resume
            # only exist in the store.
            attempts = [
                (a.index, attempt_from_store(a))
                for a in stored_attempts
                if a.index < handle.resumed_from
            ]
            attempts += [(r.index, attempt_from_handle(handle, r)) for r in handle.attempts]
            experiment: Experiment | None = handle.experiment
        else:
            attempts = [(a.index, attempt_from_store(a)) for a in stored_attempts]
            experiment = ctx.experiment if ctx is not None else None
        definition: dict[str, Any] | None = None
        pipeline: list[tuple[str, bool]] = []
        if experiment is not None:
            definition = to_json_safe(experiment, finite=True)
            pipeline = pipeline_of(experiment)
        else:
            definition, pipeline = await self._stored_definition(record)
        artifacts = await self.store.list_artifacts(run_id)
        chain = await self._chain_from_store(run_id, ctx)
        provenance = await load_provenance(self.store, record.provenance)
        return assemble_detail(
            summary,
            pipeline=pipeline,
            attempts=attempts,
            metrics=record.metrics,
            outputs=record.outputs,
            artifacts=artifact_views(artifacts, base, run_id),
            has_trace=chain is not None,
            experiment=definition,
            provenance=provenance,
        )

    async def outputs(
        self, run_id: str, *, offset: int, limit: int, query: str | None
    ) -> dict[str, Any]:
        """Return a page of the run's outputs, those containing ``query`` (404 unknown run)."""
        handle, record = await self._found(run_id)
        if record is not None:
            outputs: list[Any] = record.outputs
        else:
            assert handle is not None
            ctx = handle.context if handle.done else None
            outputs = to_json_safe(ctx.outputs, finite=True) if ctx is not None else []
        return {"run_id": run_id, **page_outputs(outputs, offset=offset, limit=limit, query=query)}

    async def sweep(self, sweep_id: str) -> dict[str, Any]:
        """Return the SweepDetail of ``sweep_id`` (404 unknown sweep, 503 without a store)."""
        if self.store is None:
            raise ApiError(
                503, "sweeps are read from the store; start serve with one", type="NoStore"
            )
        answer = await self.results.sweep(self.store, sweep_id)
        rt = self.runtime
        if rt is not None:  # runs this process executes: their live status
            for point in answer["points"]:
                for run in point["runs"]:
                    handle = rt.get(run["run_id"])
                    if handle is not None and not handle.done:
                        run["status"] = live_status(handle)
        return answer

    async def columns(self, *, experiment_id: str | None, limit: int) -> dict[str, Any]:
        """Return the column paths found in the newest ``limit`` runs (of ``experiment_id``)."""
        if self.store is None:
            rows = [row for _, row in self._handle_rows(experiment_id, None)[:limit]]
            return available_columns(
                (
                    to_json_safe(h.context.metrics, finite=True) if h.done and h.context else {},
                    to_json_safe(h.experiment, finite=True),
                    None,
                )
                for h in rows
            )
        records = await self.store.list_runs(experiment_id=experiment_id, limit=limit)
        return await self.results.available(self.store, records)

    async def _stored_definition(
        self, record: RunRecord
    ) -> tuple[dict[str, Any] | None, list[tuple[str, bool]]]:
        """The run's own stored definition (else its experiment's latest) and pipeline."""
        assert self.store is not None
        (definition,) = await load_definitions(self.store, [record])
        if definition is None:
            return None, []
        try:
            pipeline = pipeline_of(experiment_from_mapping(definition))
        except Exception:  # a definition written by another version; show it as is
            pipeline = []
        return definition, pipeline

    async def list_runs(
        self,
        *,
        experiment_id: str | None,
        status: str | None,
        limit: int,
        before: str | None,
        columns: Sequence[str] = (),
        sort: str | None = None,
        descending: bool = False,
        filters: Sequence[Filter] = (),
        offset: int = 0,
    ) -> dict[str, Any]:
        """Return a page of RunSummaries and the cursor of the next page.

        Without ``sort`` and ``filters`` the page is newest first and ``next`` is the
        ``before`` cursor of the next page. With either, every run matching
        ``experiment_id`` and ``status`` (newest :data:`MAX_SCAN` at most) is read, filtered,
        sorted (ties newest first; runs without the value last) and paged by ``offset``;
        the answer then has ``total`` (runs that passed the filters) and ``next_offset``.
        ``columns`` adds ``{"columns": {path: value}}`` to each run.
        """
        if status is not None and status not in RUN_STATUSES:
            raise ApiError(
                422,
                f"status: expected one of {', '.join(RUN_STATUSES)}, got {status!r}"[:300],
                type="InvalidParameter",
            )
        if sort is None and not filters and offset:
            raise ApiError(
                422,
                "offset: only with sort or filter (the newest-first list pages by before)",
                type="InvalidParameter",
            )
        scan = sort is not None or bool(filters)
        if self.store is None:
            if not scan:
                rows = self._handle_rows(experiment_id, status, before)
                return self._page_by_cursor(rows, limit, columns)
            records = self._handle_rows(experiment_id, status)
            return await self._page_sorted(
                [h for _, h in records],
                summary_from_handle,
                columns,
                sort,
                descending,
                filters,
                offset,
                limit,
                truncated=False,
            )
        store = self.store
        if not scan:
            try:
                page = await store.list_runs(
                    experiment_id=experiment_id, status=status, limit=limit + 1, before=before
                )
            except RunNotFound as exc:
                raise ApiError(
                    422, f"before: no run with id {before!r}"[:300], type="InvalidParameter"
                ) from exc
            more = len(page) > limit
            rows = [(self._summary_of(r), r) for r in page[:limit]]
            return await self._answer(rows, columns, next_id=rows[-1][1].id if more else None)
        records_read: list[RunRecord] = []
        cursor = None
        # A SQL store can leave the outputs (the large column) out of a listing.
        list_runs = getattr(store, "list_runs_without_outputs", store.list_runs)
        while len(records_read) < MAX_SCAN:
            batch = await list_runs(
                experiment_id=experiment_id,
                status=status,
                limit=min(_SCAN_BATCH, MAX_SCAN - len(records_read)),
                before=cursor,
            )
            records_read += batch
            if len(batch) < _SCAN_BATCH:
                break
            cursor = batch[-1].id
        truncated = len(records_read) >= MAX_SCAN
        return await self._page_sorted(
            records_read,
            self._summary_of,
            columns,
            sort,
            descending,
            filters,
            offset,
            limit,
            truncated=truncated,
        )

    def _summary_of(self, record: RunRecord) -> dict[str, Any]:
        rt = self.runtime
        return self._summary(rt.get(record.id) if rt is not None else None, record)

    async def _answer(
        self,
        rows: Sequence[tuple[dict[str, Any], Any]],
        columns: Sequence[str],
        **extra: Any,
    ) -> dict[str, Any]:
        """The RunList of ``rows`` (summary, record), with sweep ids and columns added."""
        values: list[dict[str, Any]] = [{} for _ in rows]
        if self.store is not None:
            ids = await self.results.sweep_ids(self.store, (s["id"] for s, _ in rows))
            sweep_ids: list[str | None] = [ids.get(s["id"]) for s, _ in rows]
            if columns:
                values = await self.results.columns_of(self.store, [r for _, r in rows], columns)
        else:
            sweep_ids = [_handle_sweep(h) for _, h in rows]
            if columns:
                values = [_handle_columns(h, columns) for _, h in rows]
        runs = []
        for (summary, _), sweep_id, cells in zip(rows, sweep_ids, values, strict=True):
            row = {**summary, "sweep_id": sweep_id}
            if columns:
                row["columns"] = cells
            runs.append(row)
        next_id = extra.pop("next_id", None)
        answer: dict[str, Any] = {"runs": runs, "next": next_id}
        if columns:
            answer["columns"] = list(columns)
        answer.update(extra)
        return answer

    async def _page_sorted(
        self,
        sources: Sequence[Any],
        summarize: Callable[[Any], dict[str, Any]],
        columns: Sequence[str],
        sort: str | None,
        descending: bool,
        filters: Sequence[Filter],
        offset: int,
        limit: int,
        *,
        truncated: bool,
    ) -> dict[str, Any]:
        """Filter, sort and page ``sources`` (stored records or handles).

        Only the columns the filters and the sort use are read for every run; the
        summaries and the requested columns only for the page (``bench/runs_columns.py``).
        """
        used = [*(f.column for f in filters), *([sort] if sort else [])]
        value_cols = [c for c in dict.fromkeys(used) if c not in RUN_FIELDS]
        cells: list[dict[str, Any]] = [{} for _ in sources]
        if value_cols:
            if self.store is not None:
                cells = await self.results.columns_of(self.store, sources, value_cols)
            else:
                cells = [_handle_columns(h, value_cols) for h in sources]
        summaries: dict[int, dict[str, Any]] = {}

        def summary(i: int) -> dict[str, Any]:
            found = summaries.get(i)
            if found is None:
                found = summaries[i] = summarize(sources[i])
            return found

        def cell(i: int, column: str) -> Any:
            if column in RUN_FIELDS:
                return summary(i).get(column)
            return cells[i].get(column)

        picked = [
            i for i in range(len(sources)) if all(matches(cell(i, f.column), f) for f in filters)
        ]
        if sort is not None:
            keyed = [(i, cell(i, sort)) for i in picked]
            present = [(i, v) for i, v in keyed if v is not None]
            present.sort(key=lambda item: sort_key(item[1]), reverse=descending)
            picked = [i for i, _ in present] + [i for i, v in keyed if v is None]
        page = picked[offset : offset + limit]
        more = offset + limit < len(picked)
        answer = await self._answer([(summary(i), sources[i]) for i in page], columns)
        answer.update(
            total=len(picked),
            offset=offset,
            next_offset=offset + limit if more else None,
            truncated=truncated,
        )
        return answer

    def _handle_rows(
        self, experiment_id: str | None, status: str | None, before: str | None = None
    ) -> list[tuple[dict[str, Any], Any]]:
        """(summary, handle) of this process's runs, newest first, after ``before``.

        ``before`` is looked up among all the runs, then the filters apply, so a cursor
        stays valid when its run's status changed since the previous page.
        """
        handles = self.rt.runs()
        handles.sort(key=lambda h: h.started_at if h.started_at is not None else float("inf"))
        handles.reverse()
        if before is not None:
            ids = [h.run_id for h in handles]
            if before not in ids:
                raise ApiError(
                    422, f"before: no run with id {before!r}"[:300], type="InvalidParameter"
                )
            handles = handles[ids.index(before) + 1 :]
        return [
            (summary_from_handle(h), h)
            for h in handles
            if (experiment_id is None or h.experiment_id == experiment_id)
            and (status is None or live_status(h) == status)
        ]

    def _page_by_cursor(
        self, rows: list[tuple[dict[str, Any], Any]], limit: int, columns: Sequence[str]
    ) -> dict[str, Any]:
        page = rows[:limit]
        more = len(rows) > limit and bool(page)
        runs = []
        for summary, handle in page:
            row = {**summary, "sweep_id": _handle_sweep(handle)}
            if columns:
                row["columns"] = _handle_columns(handle, columns)
            runs.append(row)
        answer: dict[str, Any] = {"runs": runs, "next": page[-1][0]["id"] if more else None}
        if columns:
            answer["columns"] = list(columns)
        return answer

    # -- submit and cancel --------------------------------------------------------------

    async def accepted(self, run_id: str, base: str) -> dict[str, Any]:
        """Return the submission answer for a known run."""
        summary = await self.summary(run_id)
        return {"run_id": run_id, "status": summary["status"], "links": links(base, run_id)}

    async def submit(
        self, sub: Submission, key: str | None, base: str
    ) -> tuple[int, dict[str, Any]]:
        """Admit ``sub`` and return ``(202, answer)``, or ``(200, answer)`` for a retry.

        Waits while the runtime's ``max_concurrent_runs`` runs execute.

        Raises:
            ApiError: 409 run id taken, 422 key reused with another body, 429 queue
                full, 503 runtime closing.
        """
        rt = self.rt
        if not rt.accepting:
            raise ApiError(
                503, "the runtime is shutting down and accepts no new runs", type="ShuttingDown"
            )
        run_id = derive_run_id(sub.run_id, key)
        if key is not None:
            owner, existing = await self.keys.claim(key, sub.fingerprint)
            if not owner:
                assert existing is not None
                return 200, await self.accepted(existing, base)
        admitted: str | None = None
        try:
            if run_id is not None:
                if run_id in self._inflight:
                    raise _taken(run_id)
                self._inflight.add(run_id)
            try:
                if run_id is not None and await self._exists(run_id):
                    if key is None:
                        raise _taken(run_id)
                    admitted = run_id  # the key's run, created before a restart
                    return 200, await self.accepted(run_id, base)
                stats = rt.statistics()
                limit = stats.max_concurrent_runs
                # No await between this check and submit() counting the submission as
                # waiting, so concurrent requests cannot all slip past it.
                if (
                    limit is not None
                    and stats.active + stats.waiting >= limit + self.limits.max_queue
                ):
                    self.metrics.reject("queue_full")
                    raise ApiError(
                        429,
                        f"{stats.waiting} submissions are waiting for admission (at most "
                        f"{self.limits.max_queue}); retry later",
                        type="QueueFull",
                        headers={"Retry-After": "1"},
                        details={"waiting": stats.waiting, "max_queue": self.limits.max_queue},
                    )
                try:
                    handle = await rt.submit(
                        sub.experiment,
                        run_id=run_id,
                        assigns=sub.assigns,
                        validate_options=sub.validate_options,
                        enable_trace=sub.trace,
                    )
                except CrucibleError as exc:
                    if rt.accepting:
                        raise api_error_from(exc) from exc
                    raise ApiError(503, str(exc), type="ShuttingDown") from exc
                except ValueError as exc:
                    raise ApiError(409, str(exc), type="RunExists") from exc
            finally:
                if run_id is not None:
                    self._inflight.discard(run_id)
            admitted = handle.run_id
            answer = {
                "run_id": handle.run_id,
                "status": live_status(handle),
                "links": links(base, handle.run_id),
            }
            return 202, answer
        finally:
            if key is not None:
                self.keys.settle(key, admitted)

    async def _exists(self, run_id: str) -> bool:
        if self.runtime is not None and self.runtime.get(run_id) is not None:
            return True
        if self.store is None:
            return False
        try:
            await self.store.get_run(run_id)
        except RunNotFound:
            return False
        return True

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run this process executes; wait up to ``cancel_wait`` for it to end.

        Raises:
            ApiError: 404 unknown run; 409 when it already ended or runs elsewhere.
        """
        handle, record = await self._found(run_id)
        if handle is not None and not handle.done:
            with anyio.move_on_after(self.cancel_wait):
                await handle.cancel()
            return {"run_id": run_id, "status": live_status(handle)}
        if record is not None:
            status = record.status
        else:
            assert handle is not None
            status = live_status(handle)
        if status in TERMINAL:
            raise ApiError(
                409,
                f"run {run_id!r} already finished ({status}); nothing to cancel",
                type="AlreadyFinished",
                details={"status": status},
            )
        raise ApiError(
            409,
            f"run {run_id!r} is {status} but not executed by this process; cancel it "
            "in the process that runs it",
            type="NotHeld",
            details={"status": status},
        )

    async def delete(self, run_id: str) -> dict[str, Any]:
        """Delete a finished run from the store (and forget its handle); say what went.

        The run's blobs and cached results stay until ``crucible-actors gc``.

        Raises:
            ApiError: 404 unknown run; 409 while it is running or pending.
        """
        handle, _ = await self.lookup(run_id)
        if handle is not None and not handle.done:
            status = live_status(handle)
            raise api_error_from(RunStillRunning(run_id, status=status))
        deleted: dict[str, Any] = {}
        if self.store is not None:
            try:
                found = await self.store.delete_runs([run_id])
            except RunNotFound:
                if handle is None:
                    raise
            else:
                deleted = {f: getattr(found, f) for f in _DELETED_COUNTS}
        if self.runtime is not None:
            self.runtime.forget(run_id)
        if handle is None and not deleted:
            raise ApiError(
                404, f"no run with id {run_id!r}", type="RunNotFound", details={"run_id": run_id}
            )
        return {"run_id": run_id, "deleted": deleted or dict.fromkeys(_DELETED_COUNTS, 0)}

    # -- events, trace, artifacts -------------------------------------------------------

    async def events(self, run_id: str, after: int) -> AsyncIterator[bytes]:
        """Return the SSE chunks of ``run_id`` after sequence ``after`` (404 when unknown)."""
        handle, record = await self._found(run_id)
        if handle is not None:
            if handle.resumed_from == 0 or record is None or self.store is None:
                return live_events(handle, after)
            # Resumed: the stages finished before the resume only exist in the store.
            earlier = [
                a for a in await self.store.list_attempts(run_id) if a.index < handle.resumed_from
            ]
            history = synthesize_events(
                msgspec.structs.replace(record, status="running"),
                earlier,
                pipeline_of(handle.experiment)[: handle.resumed_from],
            )
            return resumed_events(handle, history, after)
        store = self.store
        assert store is not None
        assert record is not None
        ctx = await self._stored_context(run_id)
        pipeline = pipeline_of(ctx.experiment) if ctx is not None else []

        async def fetch() -> tuple[str, list[dict[str, Any]]]:
            current = await store.get_run(run_id)
            attempts = await store.list_attempts(run_id)
            return current.status, synthesize_events(current, attempts, pipeline)

        return stored_events(fetch, after, self.poll_interval)

    async def trace(self, run_id: str) -> TraceChain | None:
        """Return the run's decision trace, or None when it has none (404 unknown run)."""
        handle, record = await self._found(run_id)
        if record is None:
            assert handle is not None
            ctx = handle.context if handle.done else None
            chain = ctx.trace if ctx is not None else None
            return chain if chain is not None and chain.events else None
        return await self._chain_from_store(run_id, await self._stored_context(run_id))

    async def _chain_from_store(self, run_id: str, ctx: Context | None) -> TraceChain | None:
        assert self.store is not None
        partial = ctx.trace if ctx is not None else None
        records = await self.store.list_events(run_id)
        if not records:
            # Still running: the latest checkpoint holds the trace so far.
            return partial if partial is not None and partial.events else None
        events = []
        for rec in records:
            try:
                events.append(msgspec.convert(rec.event, TraceEvent, strict=False))
            except msgspec.ValidationError:
                log.warning("run %s: trace event %d does not decode; skipped", run_id, rec.seq)
        base = partial if partial is not None else TraceChain(id=run_id, name=run_id)
        return msgspec.structs.replace(base, events=events)

    async def artifact(self, run_id: str, name: str) -> tuple[Path, ArtifactRecord]:
        """Return the local file of the artifact ``name`` the run recorded.

        Only paths the run recorded are served: ``name`` is looked up among the run's
        artifact records, never joined to a path.

        Raises:
            ApiError: 404 unknown run, unknown artifact, not a local file, or gone.
        """
        handle, record = await self._found(run_id)
        if record is not None:
            assert self.store is not None
            records = await self.store.list_artifacts(run_id)
        else:
            assert handle is not None
            ctx = handle.context if handle.done else None
            records = artifacts_from_context(ctx) if ctx is not None else []
        found = [r for r, i in zip(records, artifact_ids(records), strict=True) if i == name]
        if not found:
            raise ApiError(
                404, f"run {run_id!r} recorded no artifact {name!r}"[:300], type="ArtifactNotFound"
            )
        rec = found[0]
        location = rec.location
        if "://" in location:
            parts = urlsplit(location)
            if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
                raise ApiError(
                    404,
                    f"artifact {name!r} is not a local file ({parts.scheme}://...)",
                    type="ArtifactNotFound",
                )
            location = unquote(parts.path)
        path = await anyio.Path(location).resolve()
        if not await path.is_file():
            raise ApiError(
                404, f"the file of artifact {name!r} no longer exists", type="ArtifactNotFound"
            )
        return Path(path), rec

    def stages(self) -> list[dict[str, Any]]:
        """Return every registered stage with its reference and JSON schema."""
        reg = self.reg
        out = []
        for name in reg.names():
            try:
                obj = reg.resolve(name)
                schema = reg.schema(name)
            except Exception as exc:  # a broken plug-in must not hide the others
                log.warning("stage %r cannot be loaded: %s", name, exc)
                continue
            out.append({"name": name, "module": stage_ref(obj), "schema": _schema_json(schema)})
        return out

    async def ready(self) -> dict[str, Any]:
        """Return the readiness answer (503 when the store or runtime is not ready).

        ``unrecovered`` (present only when there are some) maps the runs start-up
        recovery could not settle to the reason: the service runs anyway.
        """
        runtime = "accepting" if self.runtime is not None and self.runtime.accepting else "closed"
        store = "none"
        if self.store is not None:
            try:
                with anyio.fail_after(5):
                    await self.store.list_runs(limit=1)
                store = "ok"
            except (StoreError, TimeoutError) as exc:
                store = f"unavailable: {exc}"
        body: dict[str, Any] = {
            "status": "ready" if runtime == "accepting" and store in ("ok", "none") else "unready",
            "store": store,
            "runtime": runtime,
        }
        recovery = getattr(self.runtime, "recovery", None)
        if recovery is not None and recovery.failed:
            body["unrecovered"] = dict(recovery.failed)
        if body["status"] != "ready":
            raise ApiError(503, "the service is not ready", type="NotReady", details=body)
        return body


#: The counts of ``DeletedRuns`` a ``DELETE /api/runs/{id}`` answer carries.
_DELETED_COUNTS = (
    "attempts",
    "checkpoints",
    "checkpoint_bytes",
    "events",
    "artifacts",
    "sweep_points",
    "sweeps",
)


def _handle_sweep(handle: RunHandle) -> str | None:
    """The sweep id a run this process executes was given (None outside a sweep)."""
    ctx = handle.context
    sweep_id = ctx.telemetry_context.get("sweep_id") if ctx is not None else None
    return sweep_id if isinstance(sweep_id, str) else None


def _handle_columns(handle: RunHandle, columns: Sequence[str]) -> dict[str, Any]:
    """The column values of a run known only from its handle (its own point options)."""
    ctx = handle.context if handle.done else None
    metrics = to_json_safe(ctx.metrics, finite=True) if ctx is not None else {}
    return run_columns(
        {"metrics": metrics}, columns, definition=to_json_safe(handle.experiment, finite=True)
    )


def _taken(run_id: str) -> ApiError:
    return ApiError(
        409,
        f"run id {run_id!r} is already taken; omit run_id or choose another",
        type="RunExists",
        details={"run_id": run_id},
    )


def _spec_hook(obj: object) -> object:
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return repr(obj)


def _schema_json(schema: dict[str, Any]) -> Any:
    """Return a stage schema as JSON (tuples become lists, classes their dotted names)."""
    return msgspec.to_builtins(schema, enc_hook=_spec_hook, str_keys=True)
