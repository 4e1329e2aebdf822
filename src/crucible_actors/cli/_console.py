"""How the CLI writes for people: rich on a terminal, plain lines anywhere else.

Every human-readable command asks :func:`stdout_console` for a console and
:func:`fancy` whether to use it: on a terminal it draws rich tables and the live run
display; to a pipe or a file it prints the plain lines it always printed, stable to grep
and diff. rich decides what a terminal is (``isatty``; ``TTY_COMPATIBLE=1|0`` and
``FORCE_COLOR`` override it, ``NO_COLOR`` drops colours). ``--json`` never goes through
rich. The console has markup off: stage names, errors and metric keys are user text and
print as written, ``[brackets]`` included.

Tests replace :data:`make_console` with one that records (``Console(record=True)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

__all__ = ["fancy", "make_console", "stdout_console"]


def _default_console() -> Console:
    from rich.console import Console

    # file=None: rich writes to whatever sys.stdout is at print time.
    return Console(markup=False, highlight=False, emoji=False)


#: Builds the console of a command; replaceable (tests record into one).
make_console: Callable[[], Console] = _default_console


def stdout_console() -> Console:
    """Return the console human output goes to (standard output)."""
    return make_console()


def fancy(console: Console, *, plain: bool = False) -> bool:
    """Tell whether to draw rich output: a terminal, and not asked for ``plain``."""
    return console.is_terminal and not plain
