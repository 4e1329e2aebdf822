"""The ``crucible-actors`` command line: ``main(argv=None) -> int``.

Exit status: 0 success, 1 a run failed (or was cancelled), 2 bad input or usage.
Each command lives in its own module exposing ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import CrucibleError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from . import _run, _stages

    parser = argparse.ArgumentParser(
        prog="crucible-actors",
        description="Run ML experiment pipelines on a supervised runtime.",
    )
    parser.add_argument("--version", action="version", version=f"crucible-actors {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = [_run, _stages]
    for name in ("_runs", "_compare", "_cache", "_gc", "_db", "_trace", "_serve"):
        try:
            modules.append(__import__(f"{__name__}.{name}", fromlist=["register"]))
        except ImportError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    for module in modules:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        result: int = args.func(args)
    except CrucibleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result
