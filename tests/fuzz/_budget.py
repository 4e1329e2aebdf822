"""The fuzz tests' Hypothesis budget: small and reproducible in CI, larger on request.

``CRUCIBLE_FUZZ_EXAMPLES=N`` runs N examples per test with a random seed (and the example
database), e.g. ``CRUCIBLE_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/fuzz``; unset, each
test runs a few dozen derandomized examples so CI stays within seconds and repeatable.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_requested = os.environ.get("CRUCIBLE_FUZZ_EXAMPLES")


def fuzz_settings(default: int) -> settings:
    """Return Hypothesis settings running ``default`` examples, or the requested budget."""
    return settings(
        max_examples=int(_requested) if _requested else default,
        derandomize=not _requested,
        deadline=None,
        database=None if not _requested else settings.default.database,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
