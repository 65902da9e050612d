"""Builds the Discord adapter from the ``[discord]`` config section."""

from __future__ import annotations

from bots.deps import AdapterDeps
from bots.discord.adapter import DiscordAdapter
from bots.discord.config import DiscordConfig
from core.config import Config


def build(config: Config, deps: AdapterDeps) -> DiscordAdapter | None:
    """The adapter, or ``None`` when ``[discord]`` is absent or ``enabled = false``."""
    section = config.raw_section("discord")
    if not section:
        return None
    parsed = DiscordConfig.model_validate(dict(section))
    if not parsed.enabled:
        return None
    return DiscordAdapter(parsed, deps)
