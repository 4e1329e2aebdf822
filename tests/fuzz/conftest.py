"""Fuzz test set-up: the service fixtures of ``tests/serve/conftest.py``."""

from __future__ import annotations

from tests.serve.conftest import serve as serve
from tests.serve.conftest import served as served
