"""The client-side rate limiter keeps every key under its published limits (hand-driven clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.horde.ratelimit import HORDE_LIMITS, Rate, RateLimiter, per_minute, per_second


class Clock:
    """A clock the test moves; ``sleep`` records the wait and moves the clock by it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def most_in_any_span(times: list[float], period: float) -> int:
    """The largest number of grants inside any half-open span of ``period`` seconds.

    Times a nanosecond apart from the span's end count as outside (float rounding of ``t + p``).
    """
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= period - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


def grants(
    limiter: RateLimiter, clock: Clock, key: str, rates: tuple[Rate, ...], gaps: list[float]
) -> list[float]:
    """Callers arriving after each gap (not waiting for one another): when each may go."""
    times = []
    for gap in gaps:
        clock.now += gap
        times.append(clock.now + limiter.reserve(key, rates))
    return times


rate_sets = st.lists(
    st.builds(Rate, st.integers(1, 12), st.sampled_from([0.5, 1.0, 2.0, 60.0])),
    min_size=1,
    max_size=3,
).map(tuple)


@settings(max_examples=150, deadline=None)
@given(
    rates=rate_sets,
    gaps=st.lists(st.floats(0, 3, allow_nan=False), min_size=1, max_size=120),
    safety=st.sampled_from([1.0, 1.1]),
)
def test_no_span_ever_holds_more_than_a_limit(
    rates: tuple[Rate, ...], gaps: list[float], safety: float
) -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep, safety=safety)
    times = grants(limiter, clock, "k", rates, gaps)
    for rate in rates:
        assert most_in_any_span(times, rate.period_s) <= rate.count
    assert times == sorted(times), "callers are served in arrival order"


@pytest.mark.parametrize("endpoint", sorted(HORDE_LIMITS))
def test_a_burst_on_each_endpoint_stays_under_the_horde_limits(endpoint: str) -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep)
    rates = HORDE_LIMITS[endpoint]
    times = grants(limiter, clock, endpoint, rates, [0.0] * 200)
    for rate in rates:
        assert most_in_any_span(times, rate.period_s) <= rate.count


def test_async_limits_are_the_published_ones() -> None:
    # The horde allows 2/s and 90/min on generate/async, 10/min on status per id (docs §4.3).
    assert per_second(2) in HORDE_LIMITS["async"]
    assert per_minute(90) in HORDE_LIMITS["async"]
    assert HORDE_LIMITS["status"] == (per_minute(10),)
    assert HORDE_LIMITS["check"] == (per_second(1),), "poll check at most once a second"


def test_burst_is_spread_at_the_allowed_pace_not_slower() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep, safety=1.1, slack_s=0.0)
    start = clock.now
    times = grants(limiter, clock, "async", (per_second(2),), [0.0] * 6)
    assert [round(t - start, 6) for t in times] == [0.0, 0.0, 1.1, 1.1, 2.2, 2.2]


def test_default_slack_keeps_late_sends_inside_the_horde_windows() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep)
    start = clock.now
    times = grants(limiter, clock, "async", (per_second(2),), [0.0] * 4)
    assert [round(t - start, 6) for t in times] == [0.0, 0.0, 1.35, 1.35]


def test_keys_do_not_share_slots() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep)
    assert limiter.reserve(("check", "a"), (per_second(1),)) == 0
    assert limiter.reserve(("check", "b"), (per_second(1),)) == 0
    assert limiter.reserve(("check", "a"), (per_second(1),)) > 0


async def test_acquire_sleeps_until_the_slot() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep, safety=1.0, slack_s=0.0)
    for _ in range(3):
        await limiter.acquire("status", (per_minute(2),))
    assert clock.slept == [60.0]


def test_retry_after_blocks_every_caller_of_the_key() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep)
    limiter.reserve("find_user", (per_minute(90),))
    limiter.block("find_user", 30.0)
    assert limiter.reserve("find_user", (per_minute(90),)) == pytest.approx(30.0)
    assert limiter.reserve("heartbeat", ()) == 0.0
    limiter.block("heartbeat", 5.0)
    assert limiter.reserve("heartbeat", ()) == pytest.approx(5.0)


def test_idle_per_request_keys_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, clock.sleep)
    for n in range(5000):
        clock.now += 1.0
        limiter.reserve(("check", f"request-{n}"), (per_second(1),))
    assert limiter.tracked_keys() < 1100


def test_rate_needs_a_positive_count_and_period() -> None:
    with pytest.raises(ValueError, match="positive period"):
        Rate(0, 1.0)
    with pytest.raises(ValueError, match="positive period"):
        Rate(1, 0.0)
