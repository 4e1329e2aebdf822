"""Run ids: random UUID4 strings, unique across threads and forked processes."""

from __future__ import annotations

import os
import threading
import uuid
import warnings

import pytest

from crucible_actors._core._ids import new_run_id


def test_run_ids_are_canonical_uuid4_strings() -> None:
    for _ in range(2000):  # several buffer refills
        rid = new_run_id()
        parsed = uuid.UUID(rid)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == rid


def test_run_ids_do_not_repeat_across_threads() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(new_run_id() for _ in range(5000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in found]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [rid for out in found for rid in out]
    assert len(set(every)) == len(every) == 20_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_run_id()  # the parent's buffer now holds ids it has not handed out yet
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads; the child here
        # runs no Python beyond drawing ids and exits at once.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        try:
            os.write(write_end, ",".join(new_run_id() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode().split(",")
    os.waitpid(pid, 0)
    parent = [new_run_id() for _ in range(10)]
    assert len(child) == 10
    assert not set(child) & set(parent)
