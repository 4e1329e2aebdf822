"""Progress of one run, as it happens, built on the run's events (:meth:`RunHandle.events`).

:class:`RunProgress` folds :class:`RunEvent` s into one row per pipeline stage (status,
attempt, time, error). Two views print it:

- :class:`LiveProgress`: a rich ``Live`` table on a terminal, redrawn on every event and
  a few times a second while a stage runs (its clock ticks). Whatever the stages print
  meanwhile (a ``report`` to stdout, log lines) is shown above the table.
- :class:`PlainProgress`: one line per event, for pipes, files and ``--no-progress``::

      [1/5] validate: started
      [1/5] validate: completed in 5.0 ms
      [3/5] call_model: failed (attempt 1): RuntimeError: rate limited
      [3/5] call_model: restarting (attempt 2) in 0.50 s
      run 9f49...: completed in 12.3 ms

Both are fed from the event loop's thread; the live view's refresh thread only reads.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console, RenderableType
    from rich.live import Live

    from .._core import Experiment, RunEvent

__all__ = ["LiveProgress", "PlainProgress", "RunProgress", "StageRow", "fmt_seconds"]

#: Row status per event type (``stage_restarted`` means: failed, waiting to retry).
_STATUS: Final = {
    "stage_started": "running",
    "stage_completed": "completed",
    "stage_failed": "failed",
    "stage_timeout": "timeout",
    "stage_restarted": "restarting",
    "stage_skipped": "skipped",
    "stage_cached": "cached",
}

_STYLES: Final = {
    "pending": "dim",
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "timeout": "bold red",
    "restarting": "yellow",
    "skipped": "dim",
    "cached": "green",
    "not run": "dim",
    "cancelled": "yellow",
}

_MARKS: Final = {
    "pending": "·",
    "completed": "✓",
    "failed": "✗",
    "timeout": "⏱",
    "restarting": "↻",
    "skipped": "-",
    "cached": "✓",
    "not run": "·",
    "cancelled": "✗",
}


def fmt_seconds(s: float | None) -> str:
    """Render a duration: ``5.0 ms`` below a second, else ``1.23 s``; ``-`` for None."""
    if s is None:
        return "-"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


class StageRow:
    """What is known about one pipeline stage of the run so far."""

    __slots__ = ("attempt", "duration", "error", "index", "label", "started_wall", "status")

    def __init__(self, index: int, label: str, status: str = "pending") -> None:
        self.index = index
        self.label = label
        self.status = status
        self.attempt = 0
        self.duration: float | None = None
        self.started_wall: float | None = None
        self.error: str | None = None


class RunProgress:
    """The run's state folded from its events: one :class:`StageRow` per StageDef."""

    def __init__(self, experiment: Experiment, run_id: str, *, resumed_from: int = 0) -> None:
        self.run_id = run_id
        self.experiment_id = experiment.id
        self.rows = [
            StageRow(i, sd.label, "done earlier" if i < resumed_from else "pending")
            for i, sd in enumerate(experiment.pipeline)
        ]
        self.status = "pending"
        self.duration: float | None = None
        self.error: str | None = None
        self.started_wall: float | None = None

    def apply(self, event: RunEvent) -> StageRow | None:
        """Fold one event in; return the row it changed (None for run-level events)."""
        data = event.data
        if event.type == "run_started":
            self.status = "running"
            self.started_wall = event.wall
            return None
        if event.type.startswith("run_"):
            self.status = str(data.get("status") or event.type.removeprefix("run_"))
            self.duration = data.get("duration")
            self.error = data.get("error")
            for row in self.rows:
                if row.status == "running":
                    row.status = "cancelled" if self.status == "cancelled" else "failed"
                elif row.status == "pending":
                    row.status = "not run"
            return None
        if event.index is None or not 0 <= event.index < len(self.rows):
            return None
        row = self.rows[event.index]
        row.status = _STATUS.get(event.type, row.status)
        if event.attempt is not None:
            row.attempt = event.attempt
        if event.type == "stage_started":
            row.started_wall = event.wall
            row.duration = None
            row.error = None
        elif event.type in ("stage_completed", "stage_cached"):
            row.duration = data.get("duration")
        elif event.type == "stage_failed":
            row.error = str(data.get("error", ""))
            if data.get("gave_up"):
                row.error += f" (gave up: {data['gave_up']})"
        elif event.type == "stage_timeout":
            row.error = f"timed out after {data.get('timeout')} s"
        elif event.type == "stage_restarted":
            row.error = str(data.get("after", ""))
        return row

    @property
    def total(self) -> int:
        """The number of stages in the pipeline."""
        return len(self.rows)


class PlainProgress:
    """Print one line per event to ``out`` (default: ``sys.stdout`` at print time)."""

    def __init__(self, progress: RunProgress, out: TextIO | None = None) -> None:
        self.progress = progress
        self._out = out

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def update(self, event: RunEvent) -> None:
        """Fold ``event`` in and print its line."""
        p = self.progress
        p.apply(event)
        line = self.line(event)
        if line is not None:
            out = self._out if self._out is not None else sys.stdout
            # One write: a stage printing from its worker thread (a report to stdout)
            # cannot land between the line and its newline.
            out.write(line + "\n")
            out.flush()

    def line(self, event: RunEvent) -> str | None:
        """Return the line for ``event`` (None for types it does not know)."""
        p, data = self.progress, event.data
        if event.type == "run_started":
            return f"run {p.run_id}: {p.experiment_id}, {p.total} stage(s)"
        if event.type.startswith("run_"):
            text = f"run {p.run_id}: {p.status} in {fmt_seconds(p.duration)}"
            return f"{text}: {p.error}" if p.error else text
        if event.index is None:
            return None
        where = f"[{event.index + 1}/{p.total}] {event.stage}"
        attempt = event.attempt or 1
        match event.type:
            case "stage_started":
                return f"{where}: started" + (f" (attempt {attempt})" if attempt > 1 else "")
            case "stage_completed":
                return f"{where}: completed in {fmt_seconds(data.get('duration'))}"
            case "stage_failed":
                gave_up = f" (gave up: {data['gave_up']})" if data.get("gave_up") else ""
                return f"{where}: failed (attempt {attempt}): {data.get('error')}{gave_up}"
            case "stage_timeout":
                return f"{where}: timed out after {data.get('timeout')} s (attempt {attempt})"
            case "stage_restarted":
                return f"{where}: restarting (attempt {attempt}) in {data.get('delay', 0):.2f} s"
            case "stage_skipped":
                return f"{where}: skipped"
            case "stage_cached":
                return f"{where}: cached (computed by run {data.get('source_run')})"
        return None


class LiveProgress:
    """A rich ``Live`` table of the stages on ``console``, redrawn as events arrive.

    Use as a context manager around the run; the last frame stays on screen.
    """

    def __init__(
        self, progress: RunProgress, console: Console, *, refresh_per_second: float = 8
    ) -> None:
        from rich.live import Live

        self.progress = progress
        self.console = console
        self._live: Live = Live(
            self,  # rendered through __rich__, so every frame reads the current state
            console=console,
            refresh_per_second=refresh_per_second,
            redirect_stdout=True,
            redirect_stderr=True,
        )

    def __enter__(self) -> LiveProgress:
        self._live.start(refresh=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def update(self, event: RunEvent) -> None:
        """Fold ``event`` in and redraw."""
        self.progress.apply(event)
        self._live.refresh()

    def __rich__(self) -> RenderableType:
        return render_progress(self.progress, now=time.time())


def render_progress(progress: RunProgress, *, now: float) -> RenderableType:
    """Return the table of ``progress`` as of Unix time ``now`` (running clocks tick)."""
    from rich.console import Group
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    p = progress
    header = Text.assemble(
        ("run ", "dim"),
        p.run_id,
        ("  experiment ", "dim"),
        p.experiment_id,
        "  ",
        (p.status, _STYLES.get(p.status, "bold")),
    )
    table = Table(expand=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("", width=1)
    table.add_column("Stage")
    table.add_column("Status", min_width=10)
    table.add_column("Attempt", justify="right")
    table.add_column("Time", justify="right", min_width=9)
    table.add_column("Note", overflow="fold", max_width=60)
    for row in p.rows:
        mark: Any
        if row.status == "running":
            mark = Spinner("dots", style="cyan")
            seconds = None if row.started_wall is None else max(0.0, now - row.started_wall)
        else:
            mark = Text(_MARKS.get(row.status, " "), style=_STYLES.get(row.status, ""))
            seconds = row.duration
        table.add_row(
            str(row.index + 1),
            mark,
            Text(row.label),
            Text(row.status, style=_STYLES.get(row.status, "")),
            str(row.attempt) if row.attempt else "",
            fmt_seconds(seconds) if seconds is not None else "",
            Text(row.error or "", style="red" if row.error else ""),
        )
    if p.duration is not None:
        header.append(f"  in {fmt_seconds(p.duration)}")
    return Group(header, table)
