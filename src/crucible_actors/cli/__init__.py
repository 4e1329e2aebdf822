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
from ..errors import CrucibleError, StoreError

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
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        # A store error inside the runtime's task group (start-up recovery, say) arrives
        # wrapped: report it as itself, in one line, not as a traceback (issue 21).
        found = _crucible_error(group)
        if found is None:
            raise
        print(f"error: {_one_line(found)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result


def _crucible_error(group: BaseExceptionGroup[BaseException]) -> CrucibleError | None:
    """Return the first CrucibleError in ``group`` if every leaf is one, else None.

    Anything else in the group (a bug, an interrupt, a cancellation) is not ours to hide:
    the group then propagates with its traceback.
    """
    matched, rest = group.split(CrucibleError)
    if matched is None or rest is not None:
        return None
    leaf: BaseException = matched
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, CrucibleError)
    return leaf


def _one_line(exc: BaseException) -> str:
    """Return ``exc``'s message; a store error's on one line (a driver's may span several)."""
    if isinstance(exc, StoreError):
        return " ".join(str(exc).split())
    return str(exc)
