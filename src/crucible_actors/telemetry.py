"""Callbacks on runtime events, in the spirit of Erlang's ``:telemetry``.

See :mod:`crucible_actors._core._telemetry` for the event names and payloads.
"""

from ._core._telemetry import EVENTS as EVENTS
from ._core._telemetry import attach as attach
from ._core._telemetry import detach as detach
from ._core._telemetry import list_handlers as list_handlers

__all__ = ["EVENTS", "attach", "detach", "list_handlers"]
