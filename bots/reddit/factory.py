"""Builds the Reddit adapter from the ``[reddit]`` config section."""

from __future__ import annotations

from bots.deps import AdapterDeps
from bots.reddit.adapter import RedditAdapter
from bots.reddit.config import RedditConfig
from bots.sections import platform_section
from core.config import Config


def build(config: Config, deps: AdapterDeps) -> RedditAdapter | None:
    """The adapter, or ``None`` when ``[reddit]`` is absent or ``enabled = false``."""
    section = platform_section(config, "reddit", RedditConfig)
    if section is None:
        return None
    return RedditAdapter(section, deps, section.secrets())
