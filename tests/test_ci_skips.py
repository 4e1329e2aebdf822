"""``tests/ci_skips.py``: with ``CI`` set a skipped test fails the session; without, it passes."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SKIPPING = """

import pytest

pytest.importorskip("no_such_extra_module", reason="needs the 'demo' extra")


def test_never_runs() -> None:
    pass
"""

PASSING = """

import pytest


def test_runs() -> None:
    pass


@pytest.mark.skip(reason="not on this platform")
def test_skipped() -> None:
    pass


@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure() -> None:
    raise AssertionError
"""


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> pytest.RunResult:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_skipping=SKIPPING, test_passing=PASSING)
    return pytester.runpytest("-p", "tests.ci_skips", "-p", "no:cacheprovider")


def test_without_ci_skips_are_reported_and_the_session_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, ci=None)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    result.stdout.no_fnmatch_line("*skips fail the run*")


def test_with_ci_a_skip_fails_the_session_listing_each_skip_and_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, ci="1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*= skips fail the run when CI is set =*",
            "2 skipped (CI installs every extra and starts every service):",
            "  test_skipping.py: needs the 'demo' extra",
            "  test_passing.py::test_skipped: not on this platform",
        ]
    )
    result.stdout.no_fnmatch_line("*test_expected_failure*known bug*")  # an xfail is no skip


def test_with_ci_a_session_without_skips_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "1")
    pytester.makepyfile(test_ok="def test_ok() -> None:\n    pass\n")
    result = pytester.runpytest("-p", "tests.ci_skips", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
