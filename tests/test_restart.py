"""Tests for the pure restart rules: restart types and the restart-intensity window."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_actors._core._restart import (
    RestartIntensity,
    RestartType,
    Strategy,
    should_restart,
)


def test_restarts_up_to_max_restarts_are_within_intensity() -> None:
    intensity = RestartIntensity(max_restarts=3, max_seconds=5)
    assert [intensity.record(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]


def test_restart_beyond_max_restarts_within_window_exceeds_intensity() -> None:
    intensity = RestartIntensity(max_restarts=3, max_seconds=5)
    for t in (0.0, 1.0, 2.0):
        intensity.record(t)
    assert intensity.record(4.5) is False


def test_zero_max_restarts_exceeds_on_first_restart() -> None:
    intensity = RestartIntensity(max_restarts=0, max_seconds=5)
    assert intensity.record(0.0) is False


def test_restart_exactly_max_seconds_old_has_left_the_window() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=5)
    assert intensity.record(10.0)
    assert intensity.record(15.0)
    assert intensity.statistics().recent == (15.0,)


def test_restart_just_under_max_seconds_old_is_still_in_the_window() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=5)
    assert intensity.record(10.0)
    assert not intensity.record(14.999)


def test_restarts_spread_wider_than_the_window_never_exceed() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=5)
    assert all(intensity.record(5.0 * k) for k in range(100))


def test_recording_goes_on_after_intensity_is_exceeded() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=5)
    assert [intensity.record(t) for t in (0.0, 1.0, 2.0, 7.5)] == [True, False, False, True]
    assert intensity.statistics().total_restarts == 4


def test_reset_forgets_every_restart() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=5)
    intensity.record(0.0)
    intensity.reset()
    assert intensity.statistics().total_restarts == 0
    assert intensity.statistics().recent == ()
    assert intensity.record(1.0)


def test_statistics_is_a_frozen_snapshot() -> None:
    intensity = RestartIntensity(max_restarts=2, max_seconds=5)
    intensity.record(1.0)
    snapshot = intensity.statistics()
    intensity.record(2.0)
    assert snapshot.total_restarts == 1
    assert snapshot.recent == (1.0,)
    assert (snapshot.max_restarts, snapshot.max_seconds) == (2, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.total_restarts = 0  # type: ignore[misc]


def test_memory_stays_bounded_by_max_restarts() -> None:
    intensity = RestartIntensity(max_restarts=2, max_seconds=1e9)
    for t in range(10_000):
        intensity.record(float(t))
    assert intensity.statistics().recent == (9997.0, 9998.0, 9999.0)


def test_time_going_backwards_is_rejected() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=5)
    intensity.record(2.0)
    with pytest.raises(ValueError, match="must not go backwards"):
        intensity.record(1.0)


@pytest.mark.parametrize(
    ("max_restarts", "max_seconds"),
    [(-1, 5.0), (1, 0.0), (1, -1.0), (1, math.nan)],
    ids=["negative-restarts", "zero-seconds", "negative-seconds", "nan-seconds"],
)
def test_invalid_limits_are_rejected(max_restarts: int, max_seconds: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        RestartIntensity(max_restarts, max_seconds)


@pytest.mark.parametrize(
    ("restart", "error", "expected"),
    [
        (RestartType.PERMANENT, None, True),
        (RestartType.PERMANENT, ValueError("boom"), True),
        (RestartType.TRANSIENT, None, False),
        (RestartType.TRANSIENT, ValueError("boom"), True),
        (RestartType.TEMPORARY, None, False),
        (RestartType.TEMPORARY, ValueError("boom"), False),
    ],
    ids=[
        "permanent-after-return",
        "permanent-after-error",
        "transient-after-return",
        "transient-after-error",
        "temporary-after-return",
        "temporary-after-error",
    ],
)
def test_restart_type_decides_whether_an_exit_is_restarted(
    restart: RestartType, error: Exception | None, expected: bool
) -> None:
    assert should_restart(restart, error) is expected


def test_enums_take_their_string_values() -> None:
    assert RestartType("transient") is RestartType.TRANSIENT
    assert Strategy("rest_for_one") is Strategy.REST_FOR_ONE
    assert [s.value for s in Strategy] == ["one_for_one", "one_for_all", "rest_for_one"]
    assert str(RestartType.TEMPORARY) == "temporary"


class _NaiveIntensity:
    """The model: remember every restart, count those in (now - max_seconds, now]."""

    def __init__(self, max_restarts: int, max_seconds: float) -> None:
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.times: list[float] = []

    def record(self, now: float) -> bool:
        self.times.append(now)
        threshold = now - self.max_seconds
        return sum(1 for t in self.times if t > threshold) <= self.max_restarts

    def recent(self) -> tuple[float, ...]:
        threshold = self.times[-1] - self.max_seconds
        in_window = [t for t in self.times if t > threshold]
        return tuple(in_window[-(self.max_restarts + 1) :])


@st.composite
def _restart_scenarios(draw: st.DrawFn) -> tuple[int, float, list[float]]:
    max_restarts = draw(st.integers(min_value=0, max_value=5))
    max_seconds = draw(
        st.one_of(
            st.sampled_from([1.0, 5.0, 60.0]),
            st.floats(min_value=1e-3, max_value=1e3, allow_nan=False),
        )
    )
    # Gaps of exactly 0, max_seconds and max_seconds / 2 hit the window's edges.
    gap = st.one_of(
        st.sampled_from([0.0, max_seconds, max_seconds / 2]),
        st.floats(min_value=0.0, max_value=3 * max_seconds, allow_nan=False),
    )
    gaps = draw(st.lists(gap, min_size=1, max_size=40))
    start = draw(st.floats(min_value=0.0, max_value=1e6, allow_nan=False))
    times: list[float] = []
    now = start
    for delta in gaps:
        now += delta
        times.append(now)
    return max_restarts, max_seconds, times


@pytest.mark.slow
@given(_restart_scenarios())
def test_intensity_agrees_with_a_naive_model(scenario: tuple[int, float, list[float]]) -> None:
    max_restarts, max_seconds, times = scenario
    intensity = RestartIntensity(max_restarts, max_seconds)
    model = _NaiveIntensity(max_restarts, max_seconds)
    for now in times:
        assert intensity.record(now) == model.record(now)
        assert intensity.statistics().recent == model.recent()
    assert intensity.statistics().total_restarts == len(times)
