"""Wires the core's ports to their default adapters, once, when the package is imported.

The core (``_core``) imports no adapter; what it needs from one it is given. This module
gives the process-wide defaults: the ``inline``, ``thread`` and ``process`` executors
(registered by importing :mod:`crucible_actors.executors`) and the store opener that
turns a store URL into a Store (:func:`crucible_actors.store.open_store`, imported only
when a URL is first opened, so ``import crucible_actors`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import executors as executors
from ._core import set_store_opener

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._core import Store

__all__ = ["open_store_url"]


def open_store_url(url: str) -> AbstractAsyncContextManager[Store]:
    """Open the store ``url`` names with :func:`crucible_actors.store.open_store`."""
    from .store import open_store

    return open_store(url)


set_store_opener(open_store_url)
