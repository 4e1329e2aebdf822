"""The exception tree of crucible-actors.

Every error the library raises on purpose derives from :class:`CrucibleError`::

    CrucibleError
      InvalidExperiment, SchemaError, InvalidOptions     bad definitions and options
        UnknownIsolation                                 a stage names no registered executor
      UnknownStage, DuplicateStage                       registry
      StageFailed (cause chained: StageTimeout, ...)     a failed run, with the pre-stage Context
      StageTimeout                                       one attempt ran past its timeout
      RestartIntensityExceeded                           supervision gave up
      RunCancelled                                       a run ended because it was cancelled
      RuntimeShutdown                                    a run interrupted by its runtime closing
      ResumeLimitExceeded                                a run resumed too often, never finishing
      MissingDependency                                  an optional extra is not installed
      StoreError: StoreUnavailable, RunNotFound,
        OwnershipLost, ...                               persistence
        OutcomeNotStored                                 a run's outcome never reached the store
        BlobError: BlobMissing, BlobCorrupt              a stored value's blob is gone or altered
      ExecutorError: WorkerCrashed                       where an attempt runs (pool, Ray)
      MessageError: EncodeError                          msgspec encode/decode failures
      ValidationFailed, DataChecksFailed,
      GuardrailViolation                                 raised by the built-in stages

Errors carry keyword attributes (``stage``, ``errors``, ``run_id`` ...) so the CLI and the
HTTP layer render them from data, never by parsing the message text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._context import Context


class CrucibleError(Exception):
    """Base class of every error crucible-actors raises on purpose."""


class InvalidExperiment(CrucibleError, ValueError):
    """An experiment definition is malformed (bad file, empty pipeline, bad field).

    Raised by :func:`load_experiment` and by the runner before any stage runs.
    ``errors`` lists every problem found; ``source`` names the file when known.
    """

    def __init__(self, errors: Sequence[str] | str, *, source: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.source = source
        where = f"{source}: " if source else ""
        body = "; ".join(self.errors)
        super().__init__(f"{where}invalid experiment: {body}")


class SchemaError(CrucibleError):
    """A stage's ``describe()`` schema is missing or does not conform to the canonical format.

    Raised at registration time, unlike :class:`InvalidOptions`, which concerns the
    options a StageDef passes to a valid stage.
    """

    def __init__(self, stage: str, errors: Sequence[str] | str) -> None:
        self.stage = stage
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__(
            f"stage {stage!r} has an invalid describe() schema: "
            + "; ".join(self.errors)
            + ". Return a dict with name, description, required, optional and types, "
            "or declare an Options msgspec Struct."
        )


class InvalidOptions(CrucibleError):
    """The options given to a stage do not match its schema.

    Raised before the stage runs when ``validate_options="error"``, or when a stage with an
    ``Options`` Struct receives options that cannot be converted into it.
    """

    def __init__(self, stage: str, errors: Sequence[str] | str) -> None:
        self.stage = stage
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__(f"invalid options for stage {stage!r}: " + "; ".join(self.errors))


class UnknownStage(CrucibleError):
    """No stage is registered under ``name``.

    ``known`` lists the registered names so the message can suggest the closest one.
    """

    def __init__(self, name: str, *, known: Sequence[str] = ()) -> None:
        import difflib

        self.name = name
        self.known = list(known)
        hint = ""
        close = difflib.get_close_matches(name, self.known, n=1)
        if close:
            hint = f"; did you mean {close[0]!r}?"
        elif self.known:
            hint = f"; registered stages: {', '.join(self.known)}"
        else:
            hint = "; the registry is empty (register it or set StageDef.stage)"
        super().__init__(f"no stage named {name!r}{hint}")


class DuplicateStage(CrucibleError):
    """A stage is registered under a name that is already taken (pass ``replace=True``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"a stage named {name!r} is already registered; "
            "pass replace=True to register(...) to replace it"
        )


class StageFailed(CrucibleError):
    """A run failed at ``stage``; what ``run()`` raises and ``RunHandle.result()`` re-raises.

    ``reason`` is the underlying exception (also chained as ``__cause__``); ``context`` is the
    Context from *before* the failing stage, so nothing a failed attempt did is visible;
    ``attempts`` counts the attempts made at that stage.
    """

    def __init__(
        self,
        stage: str,
        reason: BaseException,
        context: Context | None,
        *,
        attempts: int = 1,
        run_id: str | None = None,
    ) -> None:
        self.stage = stage
        self.reason = reason
        self.context = context
        self.attempts = attempts
        self.run_id = run_id if run_id is not None else getattr(context, "run_id", None)
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"stage {stage!r} failed after {tries}: {type(reason).__name__}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_stage_failed,
            (self.stage, self.reason, self.context, self.attempts, self.run_id),
        )


def _rebuild_stage_failed(
    stage: str, reason: BaseException, context: Context | None, attempts: int, run_id: str | None
) -> StageFailed:
    return StageFailed(stage, reason, context, attempts=attempts, run_id=run_id)


class StageTimeout(CrucibleError):
    """One attempt of ``stage`` ran longer than its ``timeout`` (seconds, from attempt start).

    Appears as ``StageFailed.reason`` when the stage gives up after a timeout. ``ran`` is
    set when the attempt returned after its deadline without ever awaiting (a *late*
    timeout: its result is discarded, as for any timeout).
    """

    def __init__(
        self, stage: str, timeout: float, *, attempt: int = 1, ran: float | None = None
    ) -> None:
        self.stage = stage
        self.timeout = timeout
        self.attempt = attempt
        #: Set when the attempt returned only after its deadline, having never awaited
        #: (so it could not be stopped): how long it ran, in seconds.
        self.ran = ran
        if ran is None:
            super().__init__(
                f"stage {stage!r} attempt {attempt} did not finish within {timeout:g} s; "
                "raise StageDef.timeout or make the stage faster"
            )
            return
        super().__init__(
            f"stage {stage!r} attempt {attempt} did not finish within {timeout:g} s: it "
            f"returned late, after {ran:.3g} s, without awaiting, so it could not be stopped "
            "and blocked the event loop; give it isolation='thread' or 'process', or make "
            "it await"
        )


class RestartIntensityExceeded(CrucibleError):
    """More than ``max_restarts`` restarts happened within ``max_seconds``: supervision gave up.

    Raised by :meth:`~crucible_actors.supervisor.Supervisor.wait` to the supervisor's
    parent, and used as ``StageFailed.reason`` when a run's restart budget runs out.
    """

    def __init__(
        self,
        max_restarts: int,
        max_seconds: float,
        *,
        supervisor: str = "supervisor",
        last_error: BaseException | None = None,
    ) -> None:
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.supervisor = supervisor
        self.last_error = last_error
        last = f"; last error: {type(last_error).__name__}: {last_error}" if last_error else ""
        super().__init__(
            f"{supervisor}: more than {max_restarts} restart(s) within {max_seconds:g} s{last}"
        )


class RunCancelled(CrucibleError):
    """A run was cancelled (handle, HTTP, Ctrl-C or runtime shutdown) before it finished.

    A run the runtime stopped while closing with ``on_shutdown="interrupt"`` ends with
    :class:`RuntimeShutdown` instead (recorded ``interrupted``, resumable).
    """

    def __init__(self, run_id: str, *, stage: str | None = None) -> None:
        self.run_id = run_id
        self.stage = stage
        at = f" during stage {stage!r}" if stage else ""
        super().__init__(f"run {run_id} was cancelled{at}")


class RuntimeShutdown(CrucibleError):
    """A run was interrupted because its runtime shut down, and can be resumed.

    Raised by ``RunHandle.result()`` for a run that was still going when
    :func:`open_runtime` exited with ``on_shutdown="interrupt"`` (what ``crucible-actors
    serve`` uses). The run stopped as fast as a cancelled one, but unlike
    :class:`RunCancelled` nobody asked for it to end: it is recorded ``interrupted`` with
    its last checkpoint, and the next ``open_runtime(on_start="resume")`` on the store (or
    ``crucible-actors runs resume RUN_ID``) continues it before ``stage``.
    """

    def __init__(self, run_id: str, *, stage: str | None = None) -> None:
        self.run_id = run_id
        self.stage = stage
        at = f" during stage {stage!r}" if stage else ""
        super().__init__(
            f"run {run_id} was interrupted{at} because its runtime shut down; it resumes "
            "from its last checkpoint on the next open_runtime(on_start='resume') on the "
            f"same store, or with 'crucible-actors runs resume {run_id}'"
        )


class ResumeLimitExceeded(CrucibleError):
    """A run was resumed ``resumes`` times without ever finishing, more than ``limit``.

    A run that takes its process down (or is cut off) at the same point every time would
    otherwise be resumed at every start forever; recovery fails it instead, with this as
    the reason (``open_runtime``'s store keeps the count in the run's row).
    """

    def __init__(self, run_id: str, *, resumes: int, limit: int) -> None:
        self.run_id = run_id
        self.resumes = resumes
        self.limit = limit
        super().__init__(
            f"run {run_id!r} was resumed {resumes - 1} times without finishing (at most "
            f"{limit}); failing it instead of resuming it again. Find what stops it in its "
            "last attempts, fix it, then start it afresh"
        )


class MissingDependency(CrucibleError):
    """An optional extra needed for ``feature`` is not installed."""

    def __init__(self, package: str, feature: str, *, extra: str | None = None) -> None:
        self.package = package
        self.feature = feature
        self.extra = extra or feature
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed; "
            f"install it with: pip install 'crucible-actors[{self.extra}]'"
        )


class StoreError(CrucibleError):
    """Base class of persistence errors; ``store`` names the store (URL without secrets)."""

    def __init__(self, message: str, *, store: str | None = None) -> None:
        self.store = store
        prefix = f"store {store}: " if store else ""
        super().__init__(prefix + message)


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened (unreachable server, unknown URL scheme, full disk)."""


class StoreCorrupt(StoreError):
    """The store's file or data is not what crucible-actors wrote (corrupt or foreign database)."""


class CheckpointDecodeError(StoreError):
    """A stored Context checkpoint no longer decodes (written by an incompatible version)."""


class RunStillRunning(StoreError):
    """A run cannot be deleted because it is ``running`` or ``pending``.

    Raised by ``Store.delete_runs`` (and ``crucible-actors runs delete``,
    ``DELETE /api/runs/{id}``) before anything is deleted; unlike :class:`RunNotFound`,
    the run exists. ``run_id`` and ``status`` name it.
    """

    def __init__(self, run_id: str, *, status: str, store: str | None = None) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(
            f"run {run_id!r} is {status} and cannot be deleted while it runs; cancel it "
            "(or let it end) and delete it then (a run left running by a dead process is "
            "marked interrupted by the next runtime opened on the store)",
            store=store,
        )


class RunNotFound(StoreError):
    """No run with ``run_id`` exists in the store."""

    def __init__(self, run_id: str, *, store: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}", store=store)


class BlobError(StoreError):
    """A large Context value stored by content (a blob) cannot be read back.

    ``digest`` is the blob's hash; ``key`` names the Context entry (``assigns['X']``),
    ``run_id`` and ``stage`` where the runtime knows them. See :class:`BlobMissing` and
    :class:`BlobCorrupt` for the two ways a blob goes wrong.
    """

    reason = "cannot be read"
    fix = "re-run the run"

    def __init__(
        self,
        digest: str,
        *,
        key: str | None = None,
        run_id: str | None = None,
        stage: str | None = None,
        store: str | None = None,
        detail: str = "",
    ) -> None:
        self.digest = digest
        self.key = key
        self.run_id = run_id
        self.stage = stage
        self.detail = detail
        super().__init__(self._message(), store=store)

    def _message(self) -> str:
        where = []
        if self.key:
            where.append(f"holding {self.key}")
        if self.run_id:
            where.append(f"of run {self.run_id}")
        if self.stage:
            where.append(f"before stage {self.stage!r}")
        more = f" ({self.detail})" if self.detail else ""
        return " ".join([f"blob {self.digest[:16]}", *where, f"{self.reason}{more};", self.fix])

    def located(
        self,
        *,
        key: str | None = None,
        run_id: str | None = None,
        stage: str | None = None,
        store: str | None = None,
    ) -> BlobError:
        """Return a copy of this error that also names ``key``, ``run_id`` and ``stage``."""
        err = type(self)(
            self.digest,
            key=self.key or key,
            run_id=self.run_id or run_id,
            stage=self.stage or stage,
            store=store or self.store,
            detail=self.detail,
        )
        err.__cause__ = self.__cause__
        return err

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_blob_error,
            (type(self), self.digest, self.key, self.run_id, self.stage, self.store, self.detail),
        )


def _rebuild_blob_error(
    cls: type[BlobError],
    digest: str,
    key: str | None,
    run_id: str | None,
    stage: str | None,
    store: str | None,
    detail: str,
) -> BlobError:
    return cls(digest, key=key, run_id=run_id, stage=stage, store=store, detail=detail)


class BlobMissing(BlobError):
    """A blob a snapshot, checkpoint or cached result refers to is not in the blob store.

    Unlike :class:`BlobCorrupt`, nothing is there at all: the file was removed (by hand, or
    by a ``gc`` that did not see the reference) or the store was moved without its blobs.
    """

    reason = "is missing from the blob store"
    fix = "the blob file was removed or the store moved without it; re-run the run"


class BlobCorrupt(BlobError):
    """A blob's bytes no longer hash to its digest (a truncated or altered file).

    Checked the first time a process reads each blob; unlike :class:`BlobMissing`, the file
    exists but its content is not what was stored.
    """

    reason = "does not match its digest (corrupt or truncated file)"
    fix = "the blob file was altered on disk; delete it and re-run the run"


class OutcomeNotStored(StoreError):
    """A run ended but its outcome could not be written to the store.

    Raised by :meth:`~crucible_actors.RunHandle.result` (the handle's status is then
    ``interrupted``): the store still holds the run ``running`` (a later ``open_runtime`` marks it
    interrupted or resumes it), so the outcome the run reached here, ``outcome``, is not
    what the store says. Unlike :class:`StoreUnavailable`, which a store call raises at
    once, this reports a run whose outcome write was retried until the runtime closed or
    the store refused it for good (another runtime took the run over).
    """

    def __init__(self, run_id: str, outcome: str, reason: str, *, store: str | None = None) -> None:
        self.run_id = run_id
        self.outcome = outcome
        self.reason = reason
        super().__init__(
            f"run {run_id!r} ended {outcome} but that outcome could not be stored ({reason}); "
            "the store does not have it (a run it still holds as running is marked "
            "interrupted, or resumed, by the next open_runtime on that store)",
            store=store,
        )


class ExecutorError(CrucibleError):
    """An executor could not run an attempt (a pool, a cluster connection); ``stage`` names it.

    Unlike a stage's own exception, the stage's code did not fail: the place it ran did.
    """

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        self.stage = stage
        super().__init__(message)


class WorkerCrashed(ExecutorError):
    """The worker running an attempt died before answering (``os._exit``, a signal, a lost node).

    ``worker`` names the worker (``pid 1234``, a Ray task or actor), ``cause`` says how it
    ended (``exit status 1``, ``killed by SIGKILL``, ``node died``). A restart policy matches
    it by name (``retry_on = ["WorkerCrashed"]``), like any exception class.
    """

    def __init__(self, stage: str, *, worker: str, cause: str, hint: str = "") -> None:
        self.worker = worker
        self.cause = cause
        more = f"; {hint}" if hint else ""
        super().__init__(
            f"stage {stage!r}: its worker ({worker}) died before answering: {cause}{more}",
            stage=stage,
        )


class MessageError(CrucibleError):
    """A value could not be encoded to, or decoded from, msgspec bytes."""


class EncodeError(MessageError):
    """A Context holds a value msgspec cannot encode; ``path`` names where (``assigns['x']``)."""

    def __init__(self, path: str, value: object, detail: str = "") -> None:
        self.path = path
        self.value_type = type(value).__name__
        more = f" ({detail})" if detail else ""
        super().__init__(
            f"cannot encode {path}: value of type {self.value_type} is not supported{more}; "
            "store plain data (str, int, float, bool, None, bytes, lists, dicts) or a "
            "picklable value (numpy, pandas, pyarrow, tuples, sets, dataclasses, Structs, "
            "enums) whose class is defined at module level"
        )


class ValidationFailed(CrucibleError):
    """The ``validate`` stage found problems and ran with ``strict=True``."""

    def __init__(self, messages: Sequence[str]) -> None:
        self.messages = list(messages)
        super().__init__("validation failed: " + "; ".join(self.messages))


class DataChecksFailed(CrucibleError):
    """The ``data_checks`` stage found examples with issues and ran with ``fail_fast=True``."""

    def __init__(self, issues: Sequence[dict[str, Any]]) -> None:
        self.issues = list(issues)
        super().__init__(
            f"data checks failed: {len(self.issues)} example(s) missing required fields"
        )


class GuardrailViolation(CrucibleError):
    """The ``guardrails`` stage found violations and ran with ``fail_on_violation=True``."""

    def __init__(self, violations: Sequence[dict[str, Any]]) -> None:
        self.violations = list(violations)
        super().__init__(f"guardrails found {len(self.violations)} violation(s)")


class OwnershipLost(StoreError):
    """A write was refused because another runtime has taken the run over (fencing).

    Raised by a store's fenced writes when the run's row names ``owner_id`` instead of
    the writer: the writing runtime lost its lease (its process looked dead, e.g. its
    PostgreSQL session ended) and another one adopted the run. The run stops in the
    writing runtime and is not written over; unlike :class:`RunNotFound` the run exists.
    """

    def __init__(self, run_id: str, *, owner_id: str | None, store: str | None = None) -> None:
        self.run_id = run_id
        self.owner_id = owner_id
        super().__init__(
            f"run {run_id!r} is now owned by runtime {owner_id!r}, which took it over "
            "(this runtime lost its lease on the store); it stops here and its state "
            "there is not written over",
            store=store,
        )
