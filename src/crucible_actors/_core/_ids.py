"""Run ids: random UUID4 strings, drawn from a buffer of OS randomness.

``str(uuid.uuid4())`` asks the kernel for 16 bytes every call; on a virtual machine that
system call alone can cost more than a whole stage of a short run. Here each thread
keeps a buffer of ``os.urandom`` bytes and formats 16 of them at a time, so the ids are
exactly as random (the same source, never reused), at one system call per 256 ids. A
forked child starts with an empty buffer, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_run_id"]

_IDS_PER_REFILL = 256


class _Pool(threading.local):
    def __init__(self) -> None:
        self.data = b""
        self.pos = 0


_pool = _Pool()


def _forget_after_fork() -> None:
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_after_fork)


def new_run_id() -> str:
    """Return a fresh random UUID (version 4) as its canonical 36-character string."""
    pool = _pool
    if pool.pos >= len(pool.data):
        pool.data = os.urandom(16 * _IDS_PER_REFILL)
        pool.pos = 0
    h = pool.data[pool.pos : pool.pos + 16].hex()
    pool.pos += 16
    # Version 4 in the 13th hex digit; variant 10xx in the 17th (RFC 9562).
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
