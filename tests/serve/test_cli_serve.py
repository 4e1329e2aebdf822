"""``crucible-actors serve`` as a real process: start, serve, stop, refuse, resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest
from tests.store_faults import seed_orphan, seed_unrecoverable_orphan

from crucible_actors.cli import main

from .conftest import start_served

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import ServeProcess

DEADLINE = 30.0


def wait_for_status(base: str, run_id: str, wanted: set[str], **kw: Any) -> dict[str, Any]:
    """Poll the run until its status is in ``wanted`` (bounded: the server is external)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        detail: dict[str, Any] = httpx.get(f"{base}/api/runs/{run_id}", timeout=5, **kw).json()
        if detail.get("status") in wanted:
            return detail
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} did not reach {wanted}: {detail}")
        time.sleep(0.05)


@pytest.mark.slow
def test_served_app_answers_health_and_runs_an_experiment(served_app: str) -> None:
    assert httpx.get(f"{served_app}/healthz").json() == {"status": "ok"}
    body = {"id": "sub", "pipeline": [{"name": "echo", "options": {"value": 2}}, {"name": "sleep"}]}
    response = httpx.post(f"{served_app}/api/runs", json=body)
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    detail = wait_for_status(served_app, run_id, {"completed", "failed"})
    assert detail["status"] == "completed"
    assert detail["metrics"] == {"value": 2, "slept": 0.05}
    assert httpx.get(f"{served_app}/").status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_events_stream_live_over_http_on_both_backends(tmp_path: Path, backend: str) -> None:
    served = start_served(tmp_path, "--backend", backend)
    try:
        body = {
            "id": "live",
            "pipeline": [{"name": "sleep", "options": {"seconds": 0.3}}, {"name": "echo"}],
        }
        run_id = httpx.post(f"{served.base_url}/api/runs", json=body).json()["run_id"]
        events = []
        with httpx.stream(
            "GET", f"{served.base_url}/api/runs/{run_id}/events", timeout=DEADLINE
        ) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(msgspec.json.decode(line[6:])["type"])
        assert events == [
            "run_started",
            "stage_started",
            "stage_completed",
            "stage_started",
            "stage_completed",
            "run_completed",
        ]
        cancel_me = httpx.post(
            f"{served.base_url}/api/runs",
            json={"id": "c", "pipeline": [{"name": "sleep", "options": {"seconds": 60}}]},
        ).json()["run_id"]
        answer = httpx.post(f"{served.base_url}/api/runs/{cancel_me}/cancel", timeout=DEADLINE)
        assert answer.status_code == 202
        assert answer.json()["status"] == "cancelled"
    finally:
        assert served.stop() == 0, served.log()


@pytest.mark.slow
def test_a_token_guards_the_api_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    served = start_served(tmp_path, "--token-file", str(token_file))
    try:
        assert httpx.get(f"{served.base_url}/api/runs").status_code == 401
        wrong = httpx.get(f"{served.base_url}/api/runs", headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 403
        right = httpx.get(
            f"{served.base_url}/api/runs", headers={"Authorization": "Bearer tok-123"}
        )
        assert right.status_code == 200
        assert httpx.get(f"{served.base_url}/healthz").status_code == 200
    finally:
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=DEADLINE) == 0, served.log()


@pytest.mark.slow
def test_a_restarted_service_resumes_the_runs_of_a_killed_one(tmp_path: Path) -> None:
    first: ServeProcess = start_served(tmp_path)
    body = {
        "id": "long",
        "pipeline": [
            {"name": "echo", "options": {"value": 1}},
            {"name": "sleep", "options": {"seconds": 1.0}},
        ],
    }
    run_id = httpx.post(f"{first.base_url}/api/runs", json=body).json()["run_id"]
    wait_for_status(first.base_url, run_id, {"running"})
    deadline = time.monotonic() + DEADLINE
    while True:  # until the first stage's checkpoint is stored
        stages = httpx.get(f"{first.base_url}/api/runs/{run_id}").json()["stages"]
        if stages[1]["status"] == "running":
            break
        assert time.monotonic() < deadline, stages
        time.sleep(0.02)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    second = start_served(tmp_path)
    try:
        detail = wait_for_status(second.base_url, run_id, {"completed", "failed", "interrupted"})
        assert detail["status"] == "completed", detail
        assert detail["metrics"] == {"value": 1, "slept": 1.0}
    finally:
        assert second.stop() == 0, second.log()


def test_binding_beyond_loopback_without_a_token_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without a token" in err
    assert "--token-file" in err


def test_an_unreadable_or_empty_token_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--token-file", str(tmp_path / "missing")]) == 2
    assert "cannot read the token file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    assert main(["serve", "--token-file", str(empty)]) == 2
    assert "must hold one token" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.1.2.3", "[::1]"])
def test_loopback_addresses(host: str) -> None:
    from crucible_actors.cli._serve import is_loopback

    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com", ""])
def test_non_loopback_addresses(host: str) -> None:
    from crucible_actors.cli._serve import is_loopback

    assert not is_loopback(host)


def stored_runs(db: Path, run_ids: list[str]) -> dict[str, Any]:
    """Read the runs from the service's SQLite file while no service is running."""
    import anyio

    from crucible_actors.store import open_store

    async def read() -> dict[str, Any]:
        async with open_store(f"sqlite:///{db}") as store:
            return {r: await store.get_run(r) for r in run_ids}

    return anyio.run(read)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "on_shutdown"),
    [("trio", None), ("asyncio", None), ("trio", "cancel")],
)
def test_sigterm_interrupts_runs_and_the_restarted_service_resumes_them(
    tmp_path: Path, backend: str, on_shutdown: str | None
) -> None:
    tally, go = tmp_path / "tally.log", tmp_path / "go"
    flags = ["--backend", backend, *(["--on-shutdown", on_shutdown] if on_shutdown else [])]
    first = start_served(tmp_path, *flags)
    body = {
        "id": "rolling",
        "pipeline": [
            {"name": "tally", "options": {"path": str(tally), "mark": "a"}},
            {"name": "await_file", "options": {"path": str(go)}},
            {"name": "tally", "options": {"path": str(tally), "mark": "b"}},
        ],
    }
    try:
        run_ids = [httpx.post(f"{first.base_url}/api/runs", json=body).json()["run_id"]]
        run_ids += [httpx.post(f"{first.base_url}/api/runs", json=body).json()["run_id"]]
        for run_id in run_ids:  # each one waiting in its second stage, the first one stored
            deadline = time.monotonic() + DEADLINE
            while (
                httpx.get(f"{first.base_url}/api/runs/{run_id}").json()["stages"][1]["status"]
                != "running"
            ):
                assert time.monotonic() < deadline, first.log()
                time.sleep(0.02)
    finally:
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=DEADLINE) == 0, first.log()
    assert "Traceback" not in first.log(), first.log()
    stopped = stored_runs(tmp_path / "serve.db", run_ids)
    expected = "cancelled" if on_shutdown == "cancel" else "interrupted"
    assert {r.status for r in stopped.values()} == {expected}
    assert {r.failure["reason_type"] for r in stopped.values()} == (
        {"RunCancelled"} if on_shutdown == "cancel" else {"RuntimeShutdown"}
    )
    go.touch()
    second = start_served(tmp_path, *flags)
    try:
        for run_id in run_ids:
            detail = wait_for_status(second.base_url, run_id, {"completed", "cancelled", "failed"})
            if on_shutdown == "cancel":
                assert detail["status"] == "cancelled", detail
                continue
            assert detail["status"] == "completed", detail
            assert detail["metrics"] == {"tally_a": 1, "tally_b": 1}
            assert [len(s["attempts"]) for s in detail["stages"]] == [1, 1, 1]
    finally:
        assert second.stop() == 0, second.log()
    lines = tally.read_text().splitlines()
    for run_id in run_ids:  # the first stage ran once, before the stop
        done = ["a"] if on_shutdown == "cancel" else ["a", "b"]
        assert [line.split()[1] for line in lines if line.split()[0] == run_id] == done


@pytest.mark.slow
def test_serve_starts_despite_a_run_it_cannot_recover_and_reports_it(tmp_path: Path) -> None:
    seed_unrecoverable_orphan(tmp_path / "serve.db")
    served = start_served(tmp_path)
    try:
        ready = httpx.get(f"{served.base_url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert list(body["unrecovered"]) == ["poison1"]
        assert "injected: this run cannot be written" in body["unrecovered"]["poison1"]
        body = {"id": "x", "pipeline": [{"name": "echo"}]}
        response = httpx.post(f"{served.base_url}/api/runs", json=body)
        assert response.status_code == 202, response.text
    finally:
        assert served.stop() == 0, served.log()
    log = served.log()
    assert "could not recover 1 run(s), left as they are (see /readyz): poison1" in log
    assert "Traceback" not in log


@pytest.mark.slow
@pytest.mark.parametrize("adopt", [True, False], ids=["adopting", "no-adopt"])
def test_no_adopt_leaves_a_run_orphaned_while_serving_to_the_next_start(
    tmp_path: Path, adopt: bool
) -> None:
    """A run orphaned after start-up (its owner died) is adopted by a running service
    within a few seconds, unless it was started with ``--no-adopt``."""
    served = start_served(tmp_path, *([] if adopt else ["--no-adopt"]))
    try:
        seed_orphan(tmp_path / "serve.db", "orphan1")
        if adopt:  # adopted (resumed) on a tick 1.5 s apart: it ends, here
            detail = wait_for_status(
                served.base_url, "orphan1", {"completed", "failed", "cancelled"}
            )
            assert detail["status"] in {"completed", "failed"}
        else:
            time.sleep(4.5)  # three adoption ticks: the service must take nothing
            response = httpx.get(f"{served.base_url}/api/runs/orphan1", timeout=5)
            assert response.json()["status"] == "running"
    finally:
        assert served.stop() == 0, served.log()
    assert "Traceback" not in served.log()


def test_the_listen_backlog_defaults_to_2048_and_follows_backlog() -> None:
    from crucible_actors.cli import _parser
    from crucible_actors.cli._serve import hypercorn_config

    default = _parser().parse_args(["serve"])
    assert hypercorn_config(default, "127.0.0.1").backlog == 2048
    chosen = _parser().parse_args(["serve", "--backlog", "777"])
    assert hypercorn_config(chosen, "127.0.0.1").backlog == 777


@pytest.mark.slow
def test_the_served_socket_listens_with_the_backlog_asked_for(tmp_path: Path) -> None:
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("needs ss (iproute2) to read a listening socket's backlog")
    served = start_served(tmp_path, "--backlog", "777")
    try:
        port = served.base_url.rsplit(":", 1)[1]
        listing = subprocess.run(
            [ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout
        # For a listening socket, ss shows the backlog as Send-Q (the third column).
        assert [line.split()[2] for line in listing.splitlines()] == ["777"], listing
    finally:
        assert served.stop() == 0, served.log()


def test_serve_on_a_corrupt_store_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database " * 400)
    assert main(["serve", "--port", "0", "--store", f"sqlite:///{garbage}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: store sqlite:///{garbage}: the file is not a readable")


def test_the_cli_offers_the_shutdown_modes_create_app_and_open_runtime_accept() -> None:
    import argparse
    import inspect
    import sys
    import typing

    from crucible_actors import Registry, Runtime, open_runtime
    from crucible_actors.cli._serve import register
    from crucible_actors.serve import create_app
    from crucible_actors.store import Store

    names = {"Runtime": Runtime, "Registry": Registry, "Store": Store}
    hints = typing.get_type_hints(create_app, localns=names)
    modes = typing.get_args(hints["on_shutdown"])
    assert set(modes) == {"interrupt", "cancel"}
    assert typing.get_args(hints["store"]) == (Store, str, type(None))
    annotation = inspect.signature(open_runtime).parameters["on_shutdown"].annotation
    runtime_module = vars(sys.modules[open_runtime.__module__])
    assert typing.get_args(eval(annotation, runtime_module)) == modes

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for mode in modes:
        assert parser.parse_args(["serve", "--on-shutdown", mode]).on_shutdown == mode
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--on-shutdown", "stop"])
    with pytest.raises(ValueError, match="on_shutdown must be 'interrupt' or 'cancel'; got 'stop'"):
        create_app(on_shutdown="stop")  # type: ignore[arg-type]
