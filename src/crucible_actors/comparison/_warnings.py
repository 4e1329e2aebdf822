"""Provenance warnings for a comparison: runs that differ in code, environment or data.

A difference in scores means little when the compared runs ran different stage code, a
different numpy, or other input data. :func:`provenance_warnings_of` reads the runs'
provenance (see the provenance guide) and returns one line per kind of
difference; :class:`~._compare.Comparison` carries them in ``warnings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core import provenance_view, provenance_warnings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._core import RunRecord

__all__ = ["provenance_warnings_of"]


async def provenance_warnings_of(store: Any, runs: Sequence[RunRecord]) -> list[str]:
    """Return one line per way ``runs`` differ in code, environment or input data.

    Runs without provenance are left out; a store error reading environments is not
    the comparison's concern (the runs then compare without environment details).
    """
    get = getattr(store, "get_environment", None)
    envs: dict[str, dict[str, Any] | None] = {}
    views: dict[str, dict[str, Any] | None] = {}
    for run in runs:
        prov = run.provenance
        env_id = prov.get("environment") if prov else None
        if isinstance(env_id, str) and env_id not in envs:
            try:
                env = await get(env_id) if get is not None else None
            except Exception:  # the comparison stands without it
                env = None
            envs[env_id] = env.record if env is not None else None
        views[run.id] = provenance_view(prov, envs.get(env_id) if isinstance(env_id, str) else None)
    return provenance_warnings(views)
