"""Both ways a ``RunStage`` reaches its stage actor, so runtime scenarios run twice.

``direct``: no stage has a timeout, so the run supervisor calls the actor in the run's
task. ``actor_task``: every stage gets a timeout too long to be reached in a test, which
puts the actor in a task of its own behind bounded memory streams. The ``delivery``
fixture (tests/conftest.py) sets the mode; a test module's pipeline helper passes its
stages through :func:`staged`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec.structs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crucible_actors import StageDef

MODES = ("direct", "actor_task")
#: Longer than any test runs, even on a virtual clock that jumps to the next deadline.
NEVER = 10.0**9

state = {"mode": "direct"}


def staged(defs: Iterable[StageDef]) -> list[StageDef]:
    """Return ``defs`` as the current mode runs them."""
    if state["mode"] != "actor_task":
        return list(defs)
    return [d if d.timeout is not None else msgspec.structs.replace(d, timeout=NEVER) for d in defs]
