"""Client-side rate limits that keep every call under the AI Horde's published limits.

The horde counts requests in *fixed* windows (flask-limiter): "2 per second", "90 per minute" …
A classic token bucket of capacity N refilling N per period lets up to 2N through one fixed window
(a full bucket at the window's start plus a period's refill), so this limiter keeps, per key, the
times of its last N grants and admits a call only when fewer than N fall in the trailing period (a
sliding window). No period-long span then holds more than N calls, whatever the server's window
boundaries are. Periods are stretched by ``safety`` to absorb network jitter between our clock
and the horde's.

Grants are reservations: ``acquire`` books the earliest free slot synchronously and then sleeps
until it, so concurrent callers are served in order with no lock and no thundering herd. Keys are
an endpoint name plus, where the horde keys per path, the request id.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` calls in any span of ``period_s`` seconds."""

    count: int
    period_s: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.period_s <= 0:
            raise ValueError(f"a rate needs count >= 1 and a positive period, not {self}")


def per_second(count: int) -> Rate:
    """``count`` per second."""
    return Rate(count, 1.0)


def per_minute(count: int) -> Rate:
    """``count`` per minute."""
    return Rate(count, 60.0)


def per_hour(count: int) -> Rate:
    """``count`` per hour."""
    return Rate(count, 3600.0)


#: The horde's limits (see docs/horde-api.md §4.3), by the endpoint names the client uses.
#: ``check`` may run 10/s per id but is cached for 1 s upstream: polling faster only wastes calls.
HORDE_LIMITS: Mapping[str, tuple[Rate, ...]] = MappingProxyType(
    {
        "async": (per_second(2), per_minute(90)),
        "check": (per_second(1),),
        "status": (per_minute(10),),
        "cancel": (per_minute(10),),
        "pop": (per_second(60),),
        "submit": (per_second(60),),
        "transfer": (per_second(1), per_hour(90)),
        "find_user": (per_minute(90),),
        "models": (per_minute(90),),
        "workers": (per_minute(90),),
        "heartbeat": (),
        "default": (per_minute(90),),
    }
)


def secret_tag(secret: str) -> str:
    """A short stable tag for keying per-API-key limits without keeping the key in the table."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass
class _Slots:
    """Grant times of one key, oldest first, and until when the server told us to hold off."""

    grants: deque[float]
    horizon_s: float
    blocked_until: float = float("-inf")


def _running_loop_time() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class RateLimiter:
    """Sliding-window limits per key, on an injected clock and sleep (defaults: the event loop)."""

    clock: Clock = _running_loop_time
    sleep: Sleep = asyncio.sleep
    safety: float = 1.1
    # Absolute slack on top: a request leaves some time after its slot is booked (a busy loop,
    # network jitter), and the horde counts arrivals in fixed windows.
    slack_s: float = 0.25
    _slots: dict[Hashable, _Slots] = field(default_factory=dict)
    _reservations: int = 0

    def reserve(self, key: Hashable, rates: Sequence[Rate]) -> float:
        """Book the earliest slot keeping ``key`` under every rate; return the wait in seconds."""
        now = self.clock()
        self._reservations += 1
        if self._reservations % 1024 == 0:
            self._prune(now)
        if not rates:
            slots = self._slots.get(key)
            return max(0.0, slots.blocked_until - now) if slots else 0.0
        longest = max(rate.count for rate in rates)
        horizon = max(rate.period_s for rate in rates) * self.safety + self.slack_s
        slots = self._slots.get(key)
        if slots is None or (slots.grants.maxlen or 0) < longest:
            old = slots.grants if slots is not None else ()
            blocked = slots.blocked_until if slots is not None else float("-inf")
            slots = _Slots(deque(old, maxlen=longest), horizon, blocked)
            self._slots[key] = slots
        at = max(now, slots.blocked_until)
        grants = slots.grants
        for rate in rates:
            if len(grants) >= rate.count:
                at = max(at, grants[-rate.count] + rate.period_s * self.safety + self.slack_s)
        grants.append(at)
        return at - now

    async def acquire(self, key: Hashable, rates: Sequence[Rate]) -> None:
        """Wait for, and take, the next slot for ``key``."""
        delay = self.reserve(key, rates)
        if delay > 0:
            await self.sleep(delay)

    def block(self, key: Hashable, seconds: float) -> None:
        """Hold every caller of ``key`` off for ``seconds`` (the server said ``Retry-After``)."""
        now = self.clock()
        slots = self._slots.get(key)
        if slots is None:
            slots = _Slots(deque(maxlen=1), seconds)
            self._slots[key] = slots
        slots.blocked_until = max(slots.blocked_until, now + seconds)

    def tracked_keys(self) -> int:
        """How many keys hold state (per-request keys are dropped once their windows pass)."""
        return len(self._slots)

    def _prune(self, now: float) -> None:
        stale = [
            key
            for key, slots in self._slots.items()
            if slots.blocked_until < now
            and (not slots.grants or slots.grants[-1] + slots.horizon_s < now)
        ]
        for key in stale:
            del self._slots[key]
