"""The ``[mastodon]`` section: defaults, validation, the token from the environment."""

from __future__ import annotations

import pytest

from bots.mastodon.config import MastodonConfig
from bots.mastodon.factory import parse_section
from core.errors import UserError


def test_defaults_match_the_fediverse_bot() -> None:
    config = MastodonConfig(api_base_url="https://example.social")
    assert config.streaming
    assert not config.nsfw_allowed
    assert config.public_cooldown_minutes == 10
    assert config.access_token_env == "HORDEBOT_MASTODON_TOKEN"


def test_errors_name_the_key() -> None:
    with pytest.raises(UserError, match=r"hordebot.toml: mastodon.poll_interval_s"):
        parse_section({"api_base_url": "https://x", "poll_interval_s": 0}, "hordebot.toml")
    with pytest.raises(UserError, match=r"mastodon.tokn"):
        parse_section({"api_base_url": "https://x", "tokn": "abc"})
    with pytest.raises(UserError, match="api_base_url is required"):
        parse_section({"enabled": True})
    assert not parse_section({"enabled": False}).enabled


def test_token_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    config = MastodonConfig(api_base_url="https://x", access_token_env="MY_TOKEN")
    monkeypatch.delenv("MY_TOKEN", raising=False)
    with pytest.raises(UserError, match="MY_TOKEN"):
        config.token()
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    assert config.token() == "s3cret"
