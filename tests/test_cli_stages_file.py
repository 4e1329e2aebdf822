"""``crucible-actors stages --file FILE``: where each stage of an experiment file runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from crucible_actors import cli

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

FILE = """
id = "scaled"

[[pipeline]]
name = "validate"

[[pipeline]]
name = "embed"
stage = "my_stages:Embed"
isolation = "ray"
pool = 2
resources = { num_gpus = 1, num_cpus = 2 }
timeout = 30
restart = "transient"

[[pipeline]]
name = "report"
isolation = "process"
enabled = false
"""


def test_stages_file_shows_isolation_pool_resources_and_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(FILE)
    assert cli.main(["stages", "--file", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "1. validate  isolation=inline  restart=temporary",
        "2. embed  (my_stages:Embed)  isolation=ray  pool=2  resources: num_cpus=2 num_gpus=1"
        "  timeout=30.0s  restart=transient",
        "3. report  isolation=process  restart=temporary  (disabled)",
    ]


def test_stages_file_json_lists_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(FILE)
    assert cli.main(["stages", "--file", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    embed = doc["stages"][1]
    assert embed["isolation"] == "ray"
    assert embed["pool"] == 2
    assert embed["resources"] == {"num_gpus": 1, "num_cpus": 2}
    assert [s["label"] for s in doc["stages"]] == ["validate", "embed", "report"]


def test_stages_file_with_a_bad_field_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('id = "x"\n[[pipeline]]\nname = "s"\npool = 0\n')
    assert cli.main(["stages", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "pool" in err
    assert "'s'" in err
