"""The shared retry loop: what it retries, how long it waits, when it gives up."""

from __future__ import annotations

import asyncio

import pytest

from core.retrying import Backoff, Verdict, call_with_retries, http_verdict, poll_forever


class Flaky(Exception):
    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, Flaky):
        return http_verdict(exc.status, exc.retry_after)
    return Verdict(False)


class Calls:
    def __init__(self, *failures: Flaky) -> None:
        self.failures = list(failures)
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        if self.failures:
            raise self.failures.pop(0)
        return "posted"


NO_JITTER = Backoff(first_s=1.0, factor=2.0, max_s=30.0, jitter=0.0)


async def test_5xx_and_429_are_retried_with_growing_waits_until_the_call_succeeds() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    calls = Calls(Flaky(503), Flaky(500), Flaky(429))
    result = await call_with_retries(calls, classify, backoff=NO_JITTER, sleep=sleep)
    assert result == "posted"
    assert calls.count == 4
    assert waits == [1.0, 2.0, 4.0]


async def test_a_wait_the_platform_asks_for_is_honoured_but_capped() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    calls = Calls(Flaky(429, retry_after=12), Flaky(429, retry_after=3600))
    await call_with_retries(calls, classify, backoff=NO_JITTER, sleep=sleep)
    assert waits == [12.0, 30.0]


async def test_a_refusal_is_raised_at_once_and_exhausted_retries_raise_the_last_error() -> None:
    async def sleep(seconds: float) -> None:
        return None

    refused = Calls(Flaky(403))
    with pytest.raises(Flaky) as caught:
        await call_with_retries(refused, classify, sleep=sleep)
    assert caught.value.status == 403
    assert refused.count == 1

    down = Calls(*(Flaky(502) for _ in range(10)))
    with pytest.raises(Flaky):
        await call_with_retries(down, classify, attempts=3, sleep=sleep)
    assert down.count == 3


def test_http_verdicts() -> None:
    assert http_verdict(None).retry
    assert http_verdict(429, "7").wait_s == 7.0
    assert http_verdict(503, "soon").wait_s is None
    assert not http_verdict(404).retry
    assert not http_verdict(400, "5").retry


def test_backoff_grows_caps_and_jitters_within_its_bound() -> None:
    backoff = Backoff(first_s=0.5, factor=3.0, max_s=10.0, jitter=0.5)
    for attempt, base in enumerate([0.5, 1.5, 4.5, 10.0, 10.0]):
        delay = backoff.delay(attempt)
        assert base <= delay <= base * 1.5


async def test_polling_survives_errors_backs_off_and_resets_after_a_good_round() -> None:
    waits: list[float] = []
    outcomes = [None, RuntimeError("down"), RuntimeError("down"), None, RuntimeError("bug")]

    async def poll_once() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if not outcomes:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await poll_forever(
            poll_once, interval_s=1.5, backoff=NO_JITTER, what="polling the fake", sleep=sleep
        )
    # good → interval; errors → backoff, never below the interval; good resets the count.
    assert waits == [1.5, 1.5, 2.0, 1.5, 1.5]
