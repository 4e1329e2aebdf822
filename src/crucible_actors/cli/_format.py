"""Small formatting and argument helpers shared by the ``runs`` and sweep commands."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from .._core import to_json_safe

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from .._core import RunRecord

__all__ = ["_common", "_elapsed", "_json", "_positive", "_seconds", "_table", "store_url"]


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _elapsed(run: RunRecord) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: CRUCIBLE_STORE_URL or sqlite:///./.crucible/crucible.db)",
    )


def store_url(arg: str | None) -> str:
    """Return ``--store``, else ``CRUCIBLE_STORE_URL``, else the embedded default."""
    from ..store import default_store_url

    return arg or default_store_url()


def _json(doc: Any) -> None:
    sys.stdout.write(json.dumps(to_json_safe(doc), indent=2, sort_keys=True) + "\n")
