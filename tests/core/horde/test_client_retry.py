"""Backoff, ``Retry-After`` parsing and the bounded retry driver."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.horde.retry import RetryDecision, RetryPolicy, parse_retry_after, run_with_retries

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


class Boom(Exception):
    pass


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 0 ", NOW) == 0.0


def test_retry_after_as_http_date() -> None:
    header = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, NOW) == pytest.approx(30.0)


def test_retry_after_in_the_past_or_garbled() -> None:
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_backoff_is_jittered_under_a_growing_ceiling() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    rng = random.Random(3)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8, "full jitter uses the whole range"


async def test_gives_up_after_the_attempts_and_raises_the_last_failure() -> None:
    sleeps = Sleeps()
    tries = 0

    async def attempt() -> str:
        nonlocal tries
        tries += 1
        raise Boom(f"try {tries}")

    with pytest.raises(Boom, match="try 3"):
        await run_with_retries(
            attempt,
            policy=RetryPolicy(attempts=3),
            decide=lambda exc: RetryDecision(),
            sleep=sleeps,
            rng=random.Random(0),
            what="test",
        )
    assert tries == 3
    assert len(sleeps.waits) == 2


async def test_succeeds_after_failures_and_honours_the_minimum_delay() -> None:
    sleeps = Sleeps()
    outcomes: list[Exception | str] = [Boom("busy"), Boom("busy"), "ok"]

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = await run_with_retries(
        attempt,
        policy=RetryPolicy(attempts=5),
        decide=lambda exc: RetryDecision(min_delay_s=12.0),
        sleep=sleeps,
        rng=random.Random(0),
        what="test",
    )
    assert result == "ok"
    assert len(sleeps.waits) == 2
    assert all(12.0 <= w <= 13.2 for w in sleeps.waits)


async def test_a_refusal_is_not_retried() -> None:
    sleeps = Sleeps()

    async def attempt() -> str:
        raise Boom("no")

    with pytest.raises(Boom):
        await run_with_retries(
            attempt,
            policy=RetryPolicy(attempts=5),
            decide=lambda exc: None,
            sleep=sleeps,
            rng=random.Random(0),
            what="test",
        )
    assert sleeps.waits == []


async def test_a_retry_after_beyond_patience_goes_to_the_caller() -> None:
    sleeps = Sleeps()

    async def attempt() -> str:
        raise Boom("come back in an hour")

    with pytest.raises(Boom):
        await run_with_retries(
            attempt,
            policy=RetryPolicy(attempts=5, max_retry_after_s=60),
            decide=lambda exc: RetryDecision(min_delay_s=3600),
            sleep=sleeps,
            rng=random.Random(0),
            what="test",
        )
    assert sleeps.waits == []
