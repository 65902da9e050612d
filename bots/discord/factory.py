"""Builds the Discord adapter from the ``[discord]`` config section."""

from __future__ import annotations

from bots.deps import AdapterDeps
from bots.discord.adapter import DiscordAdapter
from bots.discord.config import DiscordConfig
from bots.sections import platform_section
from core.config import Config


def build(config: Config, deps: AdapterDeps) -> DiscordAdapter | None:
    """The adapter, or ``None`` when ``[discord]`` is absent or ``enabled = false``."""
    parsed = platform_section(config, "discord", DiscordConfig)
    if parsed is None:
        return None
    return DiscordAdapter(parsed, deps)
