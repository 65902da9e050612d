"""Cooldowns and concurrency caps, on a hand-driven clock."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.throttle import Throttle, ThrottleRules


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_refuses_then_admits_after_the_wait() -> None:
    clock = Clock()
    throttle = Throttle(ThrottleRules(cooldown_seconds=10, max_concurrent=5), clock=clock)
    throttle.admit("alice", keyed=False)
    with pytest.raises(UserError, match="try again in 10 s"):
        throttle.admit("alice", keyed=False)
    clock.now += 10
    throttle.admit("alice", keyed=False)


def test_users_do_not_share_cooldowns() -> None:
    throttle = Throttle(ThrottleRules(cooldown_seconds=10), clock=Clock())
    throttle.admit("alice", keyed=False)
    throttle.admit("bob", keyed=False)


def test_concurrency_cap_and_release() -> None:
    clock = Clock()
    throttle = Throttle(ThrottleRules(cooldown_seconds=0, max_concurrent=2), clock=clock)
    throttle.admit("alice", keyed=False)
    throttle.admit("alice", keyed=False)
    with pytest.raises(UserError, match="already have 2"):
        throttle.admit("alice", keyed=False)
    throttle.release("alice")
    throttle.admit("alice", keyed=False)


def test_users_with_their_own_key_get_their_own_limits() -> None:
    rules = ThrottleRules(cooldown_seconds=60, max_concurrent=1, keyed_max_concurrent=3)
    throttle = Throttle(rules, clock=Clock())
    for _ in range(3):
        throttle.admit("carol", keyed=True)
    with pytest.raises(UserError):
        throttle.admit("carol", keyed=True)
