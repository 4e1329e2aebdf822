"""A pytest plugin: with ``CI`` set, a skipped test fails the run, listing every skip.

CI installs every extra and starts every service the tests use, so a skip there means
a test did not run that should have (a missing extra, a server that did not answer), not
a test that does not apply. Locally the skips stay skips, each saying what it needs.
``tests/conftest.py`` loads this plugin; ``tests/test_ci_skips.py`` checks it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest.reports import CollectReport, TestReport
    from _pytest.terminal import TerminalReporter

#: The environment variable CI systems set (GitHub Actions, GitLab, ``.ci/run``).
CI_VARIABLE = "CI"


class SkipsFailInCI:
    """Collect the skips of a session and fail it when there are any."""

    def __init__(self) -> None:
        self.skips: list[tuple[str, str]] = []

    def _record(self, report: CollectReport | TestReport) -> None:
        # Skips only: an xfail is reported as skipped too, but carries ``wasxfail``.
        if report.skipped and not hasattr(report, "wasxfail"):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skips.append((report.nodeid or report.fspath, reason.removeprefix("Skipped: ")))

    def pytest_collectreport(self, report: CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skips and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if not self.skips:
            return
        terminalreporter.section("skips fail the run when CI is set", sep="=", red=True)
        terminalreporter.line(
            f"{len(self.skips)} skipped (CI installs every extra and starts every service):"
        )
        for nodeid, reason in self.skips:
            terminalreporter.line(f"  {nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(CI_VARIABLE):
        config.pluginmanager.register(SkipsFailInCI(), "crucible-skips-fail-in-ci")
