"""The Context threaded through a pipeline run.

A :class:`Context` is a frozen msgspec Struct. Every helper returns a NEW Context and
leaves the receiver untouched, so the runtime can keep the encoded snapshot taken
before a stage and restart the stage from it. Domain data lives in ``assigns``.

What the dict and list fields may hold: plain data (str, int, float, bool, None, bytes,
lists, dicts with str keys) travels as msgpack; anything else picklable (tuples, sets,
dataclasses, Structs, enums, numpy arrays, pandas frames, Arrow tables ...) is packed and
comes back as the same type, and a large value is stored once by content in the blob
store (see ``_data.py``). A value that cannot be encoded fails the stage that stored it
with :class:`~crucible_actors.errors.EncodeError` naming the key.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import msgspec.structs

from ._ir import Experiment
from ._trace_chain import TraceChain

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = ["Context"]

_replace = msgspec.structs.replace


class Context(msgspec.Struct, frozen=True, omit_defaults=True):
    """Runtime state of one run: metrics, outputs, artifacts, assigns and the trace.

    Build one with :meth:`Context.new`; stages receive one and return a new one.
    """

    experiment_id: str
    run_id: str
    experiment: Experiment
    outputs: list[Any] = []
    metrics: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    trace: TraceChain | None = None
    telemetry_context: dict[str, Any] = {}
    assigns: dict[str, Any] = {}

    @classmethod
    def new(
        cls,
        experiment: Experiment,
        *,
        run_id: str | None = None,
        assigns: Mapping[str, Any] | None = None,
    ) -> Context:
        """Return a fresh Context for ``experiment`` (``run_id`` defaults to a UUID4)."""
        return cls(
            experiment_id=experiment.id,
            run_id=run_id if run_id is not None else str(uuid.uuid4()),
            experiment=experiment,
            assigns=dict(assigns) if assigns else {},
        )

    # -- metrics -------------------------------------------------------------------

    def put_metric(self, key: str, value: Any) -> Context:
        """Return a Context with metric ``key`` set to ``value``."""
        return _replace(self, metrics={**self.metrics, key: value})

    def get_metric(self, key: str, default: Any = None) -> Any:
        """Return metric ``key``, or ``default`` when absent."""
        return self.metrics.get(key, default)

    def update_metric(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Context:
        """Return a Context with ``fn(old)`` stored under ``key``.

        When ``key`` is absent, ``default`` is stored and ``fn`` is not called.
        """
        if key in self.metrics:
            return self.put_metric(key, fn(self.metrics[key]))
        return self.put_metric(key, default)

    def merge_metrics(self, mapping: Mapping[str, Any]) -> Context:
        """Return a Context with ``mapping`` merged into the metrics (shallow; new wins)."""
        return _replace(self, metrics={**self.metrics, **mapping})

    def has_metric(self, key: str) -> bool:
        """Return whether metric ``key`` exists."""
        return key in self.metrics

    # -- outputs -------------------------------------------------------------------

    def add_output(self, item: Any) -> Context:
        """Return a Context with ``item`` appended to the outputs."""
        return _replace(self, outputs=[*self.outputs, item])

    def add_outputs(self, items: Iterable[Any]) -> Context:
        """Return a Context with every item of ``items`` appended to the outputs."""
        return _replace(self, outputs=[*self.outputs, *items])

    # -- artifacts -----------------------------------------------------------------

    def put_artifact(self, key: str, value: Any) -> Context:
        """Return a Context with artifact ``key`` set to ``value``."""
        return _replace(self, artifacts={**self.artifacts, key: value})

    def get_artifact(self, key: str, default: Any = None) -> Any:
        """Return artifact ``key``, or ``default`` when absent."""
        return self.artifacts.get(key, default)

    def has_artifact(self, key: str) -> bool:
        """Return whether artifact ``key`` exists."""
        return key in self.artifacts

    # -- assigns -------------------------------------------------------------------

    def assign(
        self,
        key_or_mapping: str | Mapping[str, Any] | None = None,
        value: Any = None,
        /,
        **kwargs: Any,
    ) -> Context:
        """Return a Context with assigns merged in.

        ``ctx.assign("user", "alice")``, ``ctx.assign({"user": "alice"})`` and
        ``ctx.assign(user="alice")`` are equivalent.
        """
        if isinstance(key_or_mapping, str):
            updates: dict[str, Any] = {key_or_mapping: value}
        elif key_or_mapping is None:
            updates = {}
        else:
            updates = dict(key_or_mapping)
        updates.update(kwargs)
        return _replace(self, assigns={**self.assigns, **updates})

    # -- stage tracking ------------------------------------------------------------

    def mark_stage_complete(self, name: str) -> Context:
        """Return a Context with ``name`` appended to ``assigns["completed_stages"]`` once.

        Marking a stage that is already complete returns an equal copy.
        """
        done = list(self.assigns.get("completed_stages", ()))
        if name not in done:
            done.append(name)
        return _replace(self, assigns={**self.assigns, "completed_stages": done})

    def stage_completed(self, name: str) -> bool:
        """Return whether stage ``name`` has been marked complete."""
        return name in self.assigns.get("completed_stages", ())

    def completed_stages(self) -> list[str]:
        """Return the names of the completed stages, in completion order."""
        return list(self.assigns.get("completed_stages", ()))
