"""Per-user cooldowns and concurrency caps, on an injected clock so tests need not sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import UserError


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    """How often and how much one user may ask; keyed users (own horde key) get their own limits."""

    cooldown_seconds: float = 10.0
    max_concurrent: int = 2
    keyed_cooldown_seconds: float = 0.0
    keyed_max_concurrent: int = 5


@dataclass
class Throttle:
    """Tracks each user's last accepted request and in-flight count."""

    rules: ThrottleRules
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)
    _active: dict[str, int] = field(default_factory=dict)

    def admit(self, user_key: str, *, keyed: bool) -> None:
        """Count a new request for a user, or raise a polite ``UserError`` saying when to retry."""
        cooldown = self.rules.keyed_cooldown_seconds if keyed else self.rules.cooldown_seconds
        cap = self.rules.keyed_max_concurrent if keyed else self.rules.max_concurrent
        now = self.clock()
        last = self._last.get(user_key)
        if last is not None and now - last < cooldown:
            wait = cooldown - (now - last)
            raise UserError(f"slow down a little: try again in {wait:.0f} s")
        if self._active.get(user_key, 0) >= cap:
            raise UserError(
                f"you already have {cap} image requests running; wait for one to finish"
            )
        self._last[user_key] = now
        self._active[user_key] = self._active.get(user_key, 0) + 1

    def restore(self, user_key: str) -> None:
        """Count a request resumed after a restart as in flight, without a cooldown."""
        self._active[user_key] = self._active.get(user_key, 0) + 1

    def release(self, user_key: str) -> None:
        """A request of this user has ended."""
        remaining = self._active.get(user_key, 0) - 1
        if remaining > 0:
            self._active[user_key] = remaining
        else:
            self._active.pop(user_key, None)
