"""IdentityMemo: a value made once per live object, keyed by the object's identity.

Experiments, definitions and stage objects are hashed by value (or not hashable at
all), and hashing them is the work being saved; so entries are keyed by ``id(obj)``
and hold the object itself, which keeps the id from being reused by another object
while the entry lives. The memo is bounded: past ``limit`` entries it starts over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["IdentityMemo"]

K = TypeVar("K")
V = TypeVar("V")


class IdentityMemo(Generic[K, V]):
    """``make(obj)`` computed once per object (by identity), at most ``limit`` kept."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int = 256) -> None:
        self._entries: dict[int, tuple[K, V]] = {}
        self._limit = limit

    def get(self, obj: K, make: Callable[[K], V]) -> V:
        """Return the value made for ``obj``, making it with ``make(obj)`` the first time."""
        hit = self._entries.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = make(obj)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[id(obj)] = (obj, value)
        return value
