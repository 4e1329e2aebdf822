"""``POST /api/experiments/check``: experiment files read by the CLI's loader, over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz._budget import fuzz_settings

from crucible_actors import InvalidExperiment, load_experiment

if TYPE_CHECKING:
    import httpx

    from .conftest import Served

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHECK = "/api/experiments/check"
TOML = {"Content-Type": "application/toml"}


async def _check(served: Served, text: str | bytes, media: str | None) -> httpx.Response:
    headers = {"Content-Type": media} if media else {}
    return await served.client.post(CHECK, content=text, headers=headers)


@pytest.mark.parametrize(
    "text", [pytest.param(p.read_text(), id=p.name) for p in sorted(EXAMPLES.glob("*.toml"))]
)
async def test_every_example_reads_as_the_cli_reads_it(served: Served, text: str) -> None:
    response = await _check(served, text, "application/toml")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "format": "toml",
        "submission": {"experiment": _as_cli(text, "toml")},
    }


def _as_cli(text: str, fmt: str) -> Any:
    """Return the experiment as ``crucible-actors run`` loads it, as JSON-able builtins."""
    return msgspec.to_builtins(load_experiment(text.encode(), format=fmt))


def _loader_errors(text: str, fmt: str) -> list[str]:
    with pytest.raises(InvalidExperiment) as caught:
        load_experiment(text.encode(), format=fmt)
    return caught.value.errors


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('id = "x"\n[[pipeline]\nname = "echo"\n', "line 2"),
        ('id = "x"\n[[pipeline]]\nname = "echo"\nrestart = "sometimes"\n', "pipeline[0].restart"),
        ('id = "x"\npipeline = []\n', "pipeline"),
        ('id = "x"\n[[pipeline]]\nname = "echo"\noptions = { n = 99999999999999999999 }\n', "n"),
    ],
    ids=["syntax", "bad-field", "empty-pipeline", "wide-int"],
)
async def test_a_bad_file_answers_the_loaders_errors_with_their_place(
    served: Served, text: str, where: str
) -> None:
    response = await _check(served, text, "application/toml")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    expected = _loader_errors(text, "toml")
    assert error["type"] == "InvalidExperiment"
    assert [e["message"] for e in error["details"]["errors"]] == expected
    assert error["message"] == f"request: invalid experiment: {'; '.join(expected)}"
    assert where in error["message"]


async def test_yaml_and_json_files_read_as_the_cli_reads_them(served: Served) -> None:
    yaml = "id: y\npipeline:\n  - name: echo\n    timeout: 5\n"
    response = await _check(served, yaml, "application/yaml")
    assert response.json() == {
        "format": "yaml",
        "submission": {"experiment": _as_cli(yaml, "yaml")},
    }
    assert response.json()["submission"]["experiment"]["pipeline"][0]["timeout"] == 5
    text = '{"id": "j", "stages": [{"name": "echo"}]}'
    for media in ("application/json", "text/plain", None):
        response = await _check(served, text, media)
        assert response.json() == {
            "format": "json",
            "submission": {"experiment": _as_cli(text, "json")},
        }, media
    response = await _check(served, 'id = "t"\n[[stages]]\nname = "echo"\n', "text/plain")
    assert response.json()["format"] == "toml"


async def test_a_json_submission_body_keeps_its_envelope(served: Served) -> None:
    body: dict[str, Any] = {
        "experiment": {"id": "e", "pipeline": [{"name": "echo"}]},
        "run_id": "mine",
        "assigns": {"x": 1},
        "trace": False,
    }
    experiment = _as_cli(msgspec.json.encode(body["experiment"]).decode(), "json")
    response = await served.client.post(CHECK, json=body)
    assert response.json() == {"format": "json", "submission": {**body, "experiment": experiment}}
    inline = {"id": "e", "pipeline": [{"name": "echo"}], "validate_options": "warn"}
    response = await served.client.post(CHECK, json=inline)
    assert response.json()["submission"] == {"experiment": experiment, "validate_options": "warn"}
    response = await served.client.post(CHECK, json={**body, "bogus": 1})
    assert response.status_code == 422
    assert "unknown field(s) beside 'experiment': 'bogus'" in response.json()["error"]["message"]
    response = await served.client.post(CHECK, json={**body, "trace": "yes"})
    assert response.json()["error"]["message"] == "trace: expected boolean, got string"


async def test_an_empty_or_oversized_document_is_refused(served: Served, serve: Any) -> None:
    response = await _check(served, "  \n", "application/toml")
    assert response.status_code == 422
    assert (
        response.json()["error"]["message"] == "request: invalid experiment: the document is empty"
    )
    async with serve(max_body=100) as small:
        response = await _check(small, "# " + "x" * 200, "application/toml")
        assert response.status_code == 413


async def test_the_answer_is_a_submission_the_service_runs(served: Served) -> None:
    text = 'id = "round-trip"\n[[pipeline]]\nname = "echo"\noptions = { value = 7 }\n'
    checked = (await _check(served, text, "application/toml")).json()
    submitted = await served.client.post("/api/runs", json=checked["submission"])
    assert submitted.status_code == 202, submitted.text
    run_id = submitted.json()["run_id"]
    await served.wait(run_id)
    detail = (await served.client.get(f"/api/runs/{run_id}")).json()
    assert detail["status"] == "completed"
    assert detail["experiment"]["pipeline"][0]["options"] == {"value": 7}


async def test_nothing_is_checked_against_the_registry(served: Served) -> None:
    # The dashboard sends a stage reference by name when the registry serves it; the
    # submission, not the check, refuses unknown stages and references.
    text = 'id = "x"\n[[pipeline]]\nname = "nope"\nstage = "pkg.mod:attr"\n'
    response = await _check(served, text, "application/toml")
    assert response.status_code == 200
    [stage] = response.json()["submission"]["experiment"]["pipeline"]
    assert (stage["name"], stage["stage"]) == ("nope", "pkg.mod:attr")


async def test_yaml_aliases_are_refused_before_they_expand(served: Served) -> None:
    # 450 bytes that stand for ten million values: loading alone takes seconds per level.
    lines = ["id: bomb", "pipeline: [{name: echo}]", "metadata:", "  l0: &l0 [x, x, x, x, x]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 8)]
    response = await _check(served, "\n".join(lines), "application/yaml")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"] == [
        {
            "stage": None,
            "message": "YAML aliases (*name) are not accepted by the service; write the values out",
        }
    ]
    broken = "id: [unclosed\n"
    response = await _check(served, broken, "application/yaml")
    assert [e["message"] for e in response.json()["error"]["details"]["errors"]] == (
        _loader_errors(broken, "yaml")
    )


_VALID_TOML = 'id = "x"\n[[pipeline]]\nname = "echo"\noptions = { value = 1 }\n'


def _mutate(text: str, edits: list[tuple[int, str]]) -> bytes:
    out = text
    for at, chunk in edits:
        out = out[:at] + chunk + out[at + 1 :]
    return out.encode("utf-8", "surrogatepass")


_documents = st.one_of(
    st.binary(max_size=200),
    st.builds(
        _mutate,
        st.just(_VALID_TOML),
        st.lists(st.tuples(st.integers(0, 60), st.text(max_size=3)), min_size=1, max_size=4),
    ),
    st.integers(1, 3000).map(lambda n: ("a = " + "[" * n + "]" * n).encode()),
    st.integers(1, 3000).map(lambda n: ("a: " + "[" * n + "]" * n).encode()),
    st.integers(1, 3000).map(
        lambda n: ("a:\n" + "".join(" " * i + "- \n" for i in range(n))).encode()
    ),
    st.integers(1, 3000).map(lambda n: b'{"id": ' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from([b"id = nan", b"id: !!python/object:os.system {}", b'{"experiment": []}']),
)
_media = st.sampled_from(
    ["application/toml", "application/json", "application/yaml", "text/plain", "", "a/b; x"]
)


@fuzz_settings(60)
@given(body=_documents, media=_media)
async def test_no_document_makes_the_check_fail_with_500(
    served: Served, caplog: pytest.LogCaptureFixture, body: bytes, media: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="crucible_actors.serve"):
        response = await _check(served, body, media or None)
    assert response.status_code in (200, 413, 422), (body[:200], response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
