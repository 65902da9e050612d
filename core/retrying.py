"""Retrying a platform's calls: exponential backoff with jitter, honouring the platform's wait.

Every adapter meets the same 429s, 5xx and dropped connections; they share one loop here and only
say, per platform library, which exceptions are worth another try and how long the platform asked
to wait. Nothing in here knows a platform.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays of ``first_s * factor**n``, capped at ``max_s``, each with up to ``jitter`` added."""

    first_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    jitter: float = 0.25

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``attempt`` (0 for the first retry)."""
        base = min(self.max_s, self.first_s * self.factor ** max(attempt, 0))
        spread = (rng or random).random() * self.jitter * base
        return base + spread


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a failed call means: try again or not, and how long the platform asked us to wait."""

    retry: bool
    wait_s: float | None = None


Classifier = Callable[[BaseException], Verdict]
Sleep = Callable[[float], Awaitable[None]]


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    classify: Classifier,
    *,
    attempts: int = 5,
    backoff: Backoff | None = None,
    what: str = "platform call",
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``call`` until it succeeds, the classifier says stop, or ``attempts`` are spent.

    The last exception is raised as it came. A wait the platform asked for (Retry-After, a
    rate-limit reset) is honoured when it is longer than our own backoff, capped at the backoff's
    maximum so one odd header cannot park a bot for hours.
    """
    policy = backoff or Backoff()
    for attempt in range(attempts):
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            verdict = classify(exc)
            if not verdict.retry or attempt == attempts - 1:
                raise
            delay = policy.delay(attempt)
            if verdict.wait_s is not None:
                delay = min(max(delay, verdict.wait_s), policy.max_s)
            name = type(exc).__name__
            log.info("%s failed (%s); retry %d in %.1fs", what, name, attempt + 1, delay)
            await sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def http_verdict(status: int | None, retry_after: str | float | None = None) -> Verdict:
    """The usual reading of an HTTP status: 429 and 5xx (and no answer at all) are worth a retry."""
    wait: float | None = None
    if retry_after is not None:
        try:
            wait = max(0.0, float(retry_after))
        except ValueError:
            wait = None
    if status is None or status == 429 or status >= 500:
        return Verdict(True, wait)
    return Verdict(False)


async def poll_forever(
    poll_once: Callable[[], Awaitable[object]],
    *,
    interval_s: float,
    backoff: Backoff,
    what: str,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Call ``poll_once`` every ``interval_s`` until cancelled; never stop on an error.

    A platform that is down, a bad token or a bug on one item makes the next round wait longer
    (the backoff, never less than the interval), and a good round resets the wait.
    """
    failures = 0
    while True:
        try:
            await poll_once()
            failures = 0
            delay = interval_s
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", what)
            delay = max(interval_s, backoff.delay(failures))
            failures += 1
        await sleep(delay)
