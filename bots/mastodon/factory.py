"""``build(config, deps)``: the Mastodon adapter, or ``None`` when ``[mastodon]`` is off."""

from __future__ import annotations

from bots.deps import AdapterDeps
from bots.mastodon.adapter import MastodonAdapter
from bots.mastodon.config import MastodonConfig
from bots.sections import platform_section
from core.config import Config, validate_section


def parse_section(section: dict[str, object], origin: str = "<config>") -> MastodonConfig:
    """Validate a ``[mastodon]`` table; every problem is reported with its key."""
    return validate_section("mastodon", section, MastodonConfig, origin)


def build(config: Config, deps: AdapterDeps) -> MastodonAdapter | None:
    """The adapter the config asks for; the token is read from its env var now, so a missing
    one stops the start with a line naming the variable."""
    settings = platform_section(config, "mastodon", MastodonConfig)
    if settings is None:
        return None
    settings.token()
    return MastodonAdapter(settings, deps)
