"""Builds the Lemmy adapter from the ``[lemmy]`` config section."""

from __future__ import annotations

from bots.deps import AdapterDeps
from bots.lemmy.adapter import LemmyAdapter
from bots.lemmy.client import LemmyClient
from bots.lemmy.config import LemmyConfig
from bots.sections import platform_section
from core.config import Config


def build(config: Config, deps: AdapterDeps) -> LemmyAdapter | None:
    """The adapter, or ``None`` when ``[lemmy]`` is absent or ``enabled = false``."""
    section = platform_section(config, "lemmy", LemmyConfig)
    if section is None:
        return None
    client = LemmyClient(
        section.base_url,
        section.username,
        section.password(),
        timeout_s=section.request_timeout_s,
    )
    return LemmyAdapter(section, deps, client)
