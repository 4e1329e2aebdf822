"""Untimed and timed attempts, so runtime scenarios run both ways.

``direct``: stages run as the test defines them. ``timed``: every stage gets a timeout
too long to be reached in a test, so each attempt runs under its deadline's cancel
scope. The ``delivery`` fixture (tests/conftest.py) sets the mode; a test module's
pipeline helper passes its stages through :func:`staged`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec.structs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crucible_actors import StageDef

MODES = ("direct", "timed")
#: Longer than any test runs, even on a virtual clock that jumps to the next deadline.
NEVER = 10.0**9

state = {"mode": "direct"}


def staged(defs: Iterable[StageDef]) -> list[StageDef]:
    """Return ``defs`` as the current mode runs them."""
    if state["mode"] != "timed":
        return list(defs)
    return [d if d.timeout is not None else msgspec.structs.replace(d, timeout=NEVER) for d in defs]
