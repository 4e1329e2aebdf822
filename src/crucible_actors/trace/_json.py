"""The JSON form of a trace: export, and the file that save and load round-trip.

A chain (:class:`~crucible_actors.trace.TraceChain`) encodes to indented
JSON with ISO 8601 timestamps; :func:`save_trace` writes exactly what
:func:`export_json_chain` returns and :func:`load_trace` decodes it back into a chain,
which the HTML and Markdown exporters beside this module then render
(``crucible-actors trace export`` does the same for a trace read from a store). Values
JSON cannot hold are made safe by the runtime's encoder
(the runtime's JSON normaliser), so exporting never fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import msgspec

from .._core import TraceChain, to_json_safe

if TYPE_CHECKING:
    from .._core import Context

__all__ = ["export_json", "export_json_chain", "load_trace", "save_trace"]


def export_json(ctx: Context) -> str | None:
    """Return the trace as indented JSON, or None without a trace."""
    return export_json_chain(ctx.trace) if ctx.trace is not None else None


def export_json_chain(chain: TraceChain) -> str:
    """Return ``chain`` as indented JSON (timestamps in ISO 8601); never fails on odd values."""
    return msgspec.json.format(msgspec.json.encode(to_json_safe(chain)), indent=2).decode()


async def save_trace(ctx: Context, path: str | Path) -> Path:
    """Write the trace as JSON to ``path`` (parent directories are created); return the path.

    Raises:
        ValueError: ``ctx`` carries no trace.
        OSError: the file cannot be written.
    """
    if ctx.trace is None:
        raise ValueError(
            "cannot save the trace: this Context has no trace; run with enable_trace=True "
            "or call init_trace(ctx, name) first"
        )
    target = anyio.Path(path)
    await target.parent.mkdir(parents=True, exist_ok=True)
    await target.write_text(export_json_chain(ctx.trace), encoding="utf-8")
    return Path(path)


async def load_trace(path: str | Path) -> TraceChain:
    """Read a trace written by :func:`save_trace` (or :func:`export_json_chain`).

    Raises:
        ValueError: the file does not hold a trace.
        OSError: the file cannot be read.
    """
    data = await anyio.Path(path).read_bytes()
    try:
        return msgspec.json.decode(data, type=TraceChain)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ValueError(f"{path} does not hold a saved trace: {exc}") from exc
