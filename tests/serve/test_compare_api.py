"""``GET /api/compare``: JSON and the HTML page, and its errors, in-process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from tests.compare_helpers import stored_run
from tests.helpers import needs_extra

from crucible_actors.comparison import Comparison

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from tests.serve.conftest import Served


@needs_extra("bench", "scipy")
async def test_compare_answers_json_and_a_locked_down_html_page(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store="sqlite") as s:
        assert s.store is not None
        await stored_run(s.store, "run-a", [0.1, 0.2, 0.3, 0.25, 0.15])
        await stored_run(s.store, "run-b", [0.6, 0.7, 0.65, 0.8, 0.75])
        resp = await s.client.get("/api/compare", params={"runs": "run-a,run-b", "pair_by": "id"})
        assert resp.status_code == 200
        result = msgspec.json.decode(resp.content, type=Comparison)
        assert (result.paired, result.comparisons[0].better) == (True, "run-b")
        page = await s.client.get(
            "/api/compare", params=[("runs", "run-a"), ("runs", "run-b"), ("format", "html")]
        )
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert "run-b is better than run-a.</p>" in page.text
        assert page.text.count('class="dot"') == 10
        unpaired = await s.client.get(
            "/api/compare", params={"runs": "run-a,run-b", "unpaired": "true"}
        )
        assert msgspec.json.decode(unpaired.content, type=Comparison).paired is False


@needs_extra("bench", "scipy")
async def test_compare_errors_name_the_problem(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store="sqlite") as s:
        assert s.store is not None
        await stored_run(s.store, "a", [0.1, 0.2, 0.3])
        await stored_run(s.store, "b", [0.1, 0.2, 0.3], field="loss")
        cases = [
            ({}, 422, "give either runs"),
            ({"runs": "a,b", "sweep": "s"}, 422, "give either runs"),
            ({"runs": "a,b", "format": "pdf"}, 422, "format: expected 'json' or 'html'"),
            ({"runs": "a,b", "alpha": "2"}, 422, "alpha: expected a number strictly between"),
            ({"runs": "a,b", "correction": "x"}, 422, "correction: expected one of"),
            ({"runs": "a,b", "repeats": "x"}, 422, "repeats: expected 'seeds' or 'samples'"),
            ({"runs": "a,b", "cv_ratio": "-1"}, 422, "cv_ratio: expected n_test / n_train"),
            ({"runs": "a,nope"}, 404, "no run with id 'nope'"),
            ({"sweep": "nope"}, 404, "no sweep 'nope'"),
            ({"runs": "a,b"}, 422, "no numeric field is present in the outputs of every run"),
        ]
        for params, status, message in cases:
            resp = await s.client.get("/api/compare", params=params)
            assert resp.status_code == status, params
            assert message in resp.json()["error"]["message"], params


async def test_compare_without_a_store_is_unavailable(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store=None) as s:
        resp = await s.client.get("/api/compare", params={"runs": "a,b"})
        assert resp.status_code == 503
        assert "needs a store" in resp.json()["error"]["message"]
