"""Which Mastodon.py failures are worth another try, and how long a rate limit asks to wait."""

from __future__ import annotations

import time
from types import SimpleNamespace

from mastodon.errors import (
    MastodonAPIError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServiceUnavailableError,
)

from bots.mastodon.api import MastodonApi
from bots.mastodon.config import MastodonConfig


def api(reset: float | None = None) -> MastodonApi:
    client = SimpleNamespace(ratelimit_reset=reset)
    return MastodonApi(MastodonConfig(api_base_url="https://x"), "token", client=client)


def test_a_rate_limit_waits_until_the_reset_time() -> None:
    verdict = api(time.time() + 42).classify(MastodonRatelimitError("Hit rate limit."))
    assert verdict.retry
    assert verdict.wait_s is not None
    assert 40 < verdict.wait_s <= 42
    assert api(None).classify(MastodonRatelimitError("x")).wait_s is None


def test_outages_are_retried_and_refusals_are_not() -> None:
    unavailable = MastodonServiceUnavailableError("e", 503, "Service Unavailable", None)
    assert api().classify(unavailable).retry
    assert api().classify(MastodonNetworkError("reset by peer")).retry
    assert not api().classify(MastodonNotFoundError("e", 404, "Not Found", None)).retry
    assert not api().classify(MastodonAPIError("e", 422, "Unprocessable", "too long")).retry
    assert api().classify(MastodonAPIError("e", 507, "Insufficient Storage", None)).retry
    assert not api().classify(ValueError("a bug")).retry
