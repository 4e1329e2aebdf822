"""Where the Ray cluster is (:func:`ray_address`); what a stage asks of it (:func:`ray_request`)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._core import RAY_RESOURCES, InvalidExperiment

if TYPE_CHECKING:
    from ..._core import StageDef

__all__ = ["ray_address", "ray_request"]


def ray_address(explicit: str | None = None, *, cwd: str | Path | None = None) -> str | None:
    """Return the Ray address a runtime uses: ``explicit``, ``RAY_ADDRESS``, ``crucible.toml``.

    None means: start a local Ray.

    Raises:
        InvalidExperiment: ``crucible.toml`` has a ``[ray]`` table whose ``address`` is
            not a string.
    """
    if explicit:
        return explicit
    env = os.environ.get("RAY_ADDRESS")
    if env:
        return env
    path = Path(cwd or Path.cwd()) / "crucible.toml"
    if not path.is_file():
        return None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None  # the registry reports an unreadable crucible.toml
    section = config.get("ray", {})
    address = section.get("address") if isinstance(section, dict) else None
    if address is not None and not isinstance(address, str):
        raise InvalidExperiment(
            f"[ray] address must be a string like 'ray://head:10001' or 'auto', "
            f"got {type(address).__name__}",
            source=str(path),
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
