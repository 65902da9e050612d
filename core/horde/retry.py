"""Bounded retries with exponential backoff, full jitter and ``Retry-After``.

The policy is a value; the driver takes the clock-free pieces it needs (a sleep, a random source)
so tests run it without waiting. Which failures are worth another attempt is the caller's call:
it depends on whether the request may be sent twice (see ``client.py``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to try again.

    ``attempts`` counts every try, the first included. A ``Retry-After`` longer than
    ``max_retry_after_s`` is not waited out: the error goes to the caller, who can tell the user
    when to come back instead of holding a chat reply for minutes.
    """

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 60.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full-jitter delay before retry ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (retry_number - 1))
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Try again after at least ``min_delay_s`` (a ``Retry-After``), or on backoff alone."""

    min_delay_s: float = 0.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


async def run_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    decide: Callable[[Exception], RetryDecision | None],
    sleep: Sleep,
    rng: random.Random,
    what: str,
) -> T:
    """Run ``attempt`` until it succeeds, ``decide`` says stop, or the attempts run out.

    ``decide`` gets each failure and answers ``None`` (give up: the failure propagates) or a
    ``RetryDecision``. The last failure propagates unchanged when the attempts are spent.
    """
    retry_number = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            decision = decide(exc)
            retry_number += 1
            if decision is None or retry_number >= policy.attempts:
                raise
            if decision.min_delay_s > policy.max_retry_after_s:
                raise
            delay = max(decision.min_delay_s, policy.backoff(retry_number, rng))
            if decision.min_delay_s:
                # Waking everybody at the exact second the server named piles them up again.
                delay += rng.uniform(0.0, min(1.0, 0.1 * decision.min_delay_s))
            log.info(
                "%s failed (%s); retry %d of %d in %.1f s",
                what,
                type(exc).__name__,
                retry_number,
                policy.attempts - 1,
                delay,
            )
            await sleep(delay)
