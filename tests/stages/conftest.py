"""Fixtures for the stage tests: a migrated MLflow tracking database, copied per test.

MLflow creates a fresh SQLite tracking database by running its schema migrations (seconds);
one database is migrated per session and each test gets a copy of it in its ``tmp_path``.
The conformance test runs ``mlflow_log`` with its defaults, which log to
``MLFLOW_TRACKING_URI``: for that stage it points at such a copy.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from tests.helpers import missing_extra

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mlflow", reason=missing_extra("mlflow"))
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A ``sqlite:///`` tracking URI of a fresh, migrated MLflow database in ``tmp_path``.

    The working directory moves to ``tmp_path`` too: MLflow puts the artifacts of
    experiments created without an artifact location under ``./mlruns``.
    """
    monkeypatch.chdir(tmp_path)
    template: Path = request.getfixturevalue("mlflow_template")
    path = tmp_path / "mlflow.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def _mlflow_for_conformance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("name") == "mlflow_log":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", request.getfixturevalue("mlflow_uri"))
