"""``crucible-actors runs delete`` and ``gc`` on a real SQLite file, through ``cli.main``."""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from crucible_actors.cli import main
from crucible_actors.cli._gc import human_bytes, parse_duration
from crucible_actors.store import open_store

from .test_contract import checkpoint, outcome, start

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path

    from crucible_actors.store import Store


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    return tmp_path / "x.db"


def url_of(db: Path) -> str:
    return f"sqlite:///{db}"


def with_store(db: Path, fn: Callable[[Store], Coroutine[Any, Any, Any]]) -> Any:
    async def body() -> Any:
        async with open_store(url_of(db)) as store:
            return await fn(store)

    return anyio.run(body, backend="trio")


def seed(db: Path, finished: dict[str, int], running: tuple[str, ...] = ()) -> None:
    """Runs ended as completed, each with a checkpoint of the given size; and running ones."""

    async def fill(store: Store) -> None:
        for run_id, size in finished.items():
            await start(store, run_id)
            await store.finish_run(
                outcome(run_id),
                artifacts=[],
                events=[],
                checkpoint=checkpoint(run_id, 1, os.urandom(size)),
            )
        for run_id in running:
            await start(store, run_id)

    with_store(db, fill)


def run_ids(db: Path) -> list[str]:
    async def ids(store: Store) -> list[str]:
        return [r.id for r in await store.list_runs()]

    result: list[str] = with_store(db, ids)
    return result


def test_runs_delete_deletes_the_named_runs_and_says_what_went(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db, {"r1": 1000, "r2": 10})
    assert main(["runs", "delete", "r1", "--store", url_of(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "deleted 1 run: 0 attempts, 2 checkpoints (1.0 kB), 0 trace events, 0 artifact records"
    )
    assert out[1] == "  r1"
    assert out[2] == f"free their blobs and the space: crucible-actors gc --store {url_of(db)}"
    assert run_ids(db) == ["r2"]


def test_runs_delete_refuses_a_running_run_in_one_line_and_deletes_nothing(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db, {"r1": 10}, running=("live",))
    assert main(["runs", "delete", "r1", "live", "--store", url_of(db)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert "run 'live' is running and cannot be deleted while it runs" in lines[0]
    assert run_ids(db) == ["live", "r1"]


def test_runs_delete_of_an_unknown_run_fails_in_one_line(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db, {"r1": 10})
    assert main(["runs", "delete", "ghost", "--store", url_of(db)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "no run with id 'ghost'" in err[0]
    assert run_ids(db) == ["r1"]


def test_a_selection_needs_yes_off_a_terminal_then_skips_live_runs(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db, {"old1": 10, "old2": 10}, running=("live",))
    argv = ["runs", "delete", "--older-than", "7d", "--store", url_of(db)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err == "error: would delete 2 runs; pass --yes to delete them (or --dry-run to list them)\n"
    )
    assert run_ids(db) == ["live", "old2", "old1"]

    assert main([*argv, "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is True
    assert doc["deleted"]["run_ids"] == ["old1", "old2"]
    assert doc["deleted"]["skipped"] == ["live"]
    assert run_ids(db) == ["live", "old2", "old1"]

    assert main([*argv, "--yes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == url_of(db)
    assert doc["dry_run"] is False
    assert doc["deleted"]["run_ids"] == ["old1", "old2"]
    assert doc["deleted"]["checkpoints"] == 4
    assert run_ids(db) == ["live"]


def test_a_selection_that_matches_nothing_deletes_nothing(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db, {"r1": 10})
    assert main(["runs", "delete", "--status", "failed", "--store", url_of(db)]) == 0
    assert capsys.readouterr().out == f"store {url_of(db)}: no runs to delete\n"
    assert run_ids(db) == ["r1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "name the runs to delete, or select them with --older-than DURATION"),
        (["r1", "--older-than", "1d"], "name runs or select them"),
    ],
)
def test_runs_delete_usage_errors(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    seed(db, {"r1": 10})
    assert main(["runs", "delete", *argv, "--store", url_of(db)]) == 2
    assert message in capsys.readouterr().err
    assert run_ids(db) == ["r1"]


def test_a_running_status_cannot_be_selected(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "delete", "--status", "running", "--older-than", "1d"]) == 2
    assert "invalid choice: 'running'" in capsys.readouterr().err


def test_gc_returns_the_space_of_deleted_runs_to_the_file_system(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db, {"big": 4_000_000, "small": 1000})
    assert main(["runs", "delete", "big", "--store", url_of(db)]) == 0
    capsys.readouterr()
    grown = sum(p.stat().st_size for p in db.parent.iterdir() if p.name.startswith("x.db"))
    assert grown > 4_000_000

    assert main(["gc", "--store", url_of(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == url_of(db)
    assert doc["bytes_before"] >= 4_000_000
    assert doc["bytes_after"] < 500_000
    assert doc["freed"] == doc["bytes_before"] - doc["bytes_after"]
    assert (doc["blobs"], doc["cached_results"], doc["blobs_kept"]) == (0, 0, 0)
    left = sum(p.stat().st_size for p in db.parent.iterdir() if p.name.startswith("x.db"))
    assert left <= doc["bytes_after"]  # closing the store removes the WAL files too
    assert run_ids(db) == ["small"]

    assert main(["gc", "--store", url_of(db)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("freed ")
    assert ": 0 blobs (0 B), 0 cached results (0 B); store " in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "d", "7 days", "-1d", "1y", ""])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected a duration such as 7d"):
        parse_duration(text)


def test_bytes_print_in_decimal_units() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 41_900_000, 1_234_000_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "41.9 MB",
        "1.2 GB",
    ]


def test_gc_removes_partial_blob_files_a_killed_writer_left(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db, {"r1": 10})
    tmp = db.parent / "x.db.blobs" / "tmp"
    tmp.mkdir(parents=True)
    stale, fresh = tmp / "0123456789abcdef.stale", tmp / "0123456789abcdef.fresh"
    stale.write_bytes(b"s" * 300_000)
    fresh.write_bytes(b"f" * 1000)
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(fresh, (time.time() + 3600, time.time() + 3600))  # a write still going on
    assert main(["gc", "--store", url_of(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["blobs"], doc["blob_bytes"]) == (1, 300_000)
    assert not stale.exists()
    assert fresh.exists()
