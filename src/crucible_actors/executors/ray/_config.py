"""Where the Ray cluster is (:func:`ray_address`); what a stage asks of it (:func:`ray_request`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..._core import RAY_RESOURCES, InvalidExperiment, find_config

if TYPE_CHECKING:
    from pathlib import Path

    from ..._core import StageDef

__all__ = ["ray_address", "ray_request"]


def ray_address(explicit: str | None = None, *, cwd: str | Path | None = None) -> str | None:
    """Return the Ray address a runtime uses: ``explicit``, ``RAY_ADDRESS``, the config.

    The config is the project configuration, found as the stage registry finds it: the
    nearest ``crucible.toml`` (its ``[ray]`` table), or ``pyproject.toml`` with a
    ``[tool.crucible]`` table (its ``[tool.crucible.ray]``), at or above ``cwd``
    (default: the working directory). None means: start a local Ray. Sync file IO:
    async callers run it in a worker thread.

    Raises:
        ValueError: the nearest configuration file is unreadable or not valid TOML, or
            its ``ray`` is not a table (a ``ConfigFileError``, which names the file).
        InvalidExperiment: the ``ray`` table's ``address`` is not a string.
    """
    if explicit:
        return explicit
    env = os.environ.get("RAY_ADDRESS")
    if env:
        return env
    config = find_config(cwd)
    if config is None:
        return None
    address = config.table("ray").get("address")
    if address is not None and not isinstance(address, str):
        raise InvalidExperiment(
            f"{config.table_name('ray')} address must be a string like 'ray://head:10001' "
            f"or 'auto', got {type(address).__name__}",
            source=str(config.path),
        )
    return address or None


def ray_request(stage_def: StageDef) -> dict[str, Any]:
    """Return the Ray ``.options(...)`` resource keywords for ``stage_def.resources``."""
    request: dict[str, Any] = {}
    custom: dict[str, float] = {}
    for key, value in stage_def.resources.items():
        if key in RAY_RESOURCES:
            request[key] = int(value) if key == "memory" else value
        else:
            custom[key] = float(value)
    if custom:
        request["resources"] = custom
    return request
