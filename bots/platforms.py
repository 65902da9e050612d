"""The platform adapters a config asks for, built by each platform's own factory.

A platform's package is imported only when its section is in the config, so a bot that runs on
Mastodon alone never imports discord.py, and a missing extra is one clear line.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from bots.deps import AdapterDeps
from core.config import Config
from core.contract import Adapter
from core.errors import UserError

PLATFORMS = ("discord", "mastodon", "lemmy", "reddit")
# The optional dependency group that brings each platform's client library.
_EXTRAS = {"discord": "discord", "mastodon": "mastodon", "lemmy": "lemmy", "reddit": "reddit"}


class _Factory(Protocol):
    def build(self, config: Config, deps: AdapterDeps) -> Adapter | None: ...


def configured_platforms(config: Config) -> list[str]:
    """The platforms whose section is present and not switched off."""
    return [
        name
        for name in PLATFORMS
        if (section := config.raw_section(name)) and section.get("enabled", True) is not False
    ]


def build_adapters(config: Config, deps: AdapterDeps) -> list[Adapter]:
    """One adapter per configured platform, in ``PLATFORMS`` order."""
    adapters: list[Adapter] = []
    for name in configured_platforms(config):
        try:
            factory: _Factory = importlib.import_module(f"bots.{name}.factory")
        except ImportError as exc:
            if (exc.name or "").split(".")[0] in ("bots", "core", "styles"):
                raise  # our own bug, not a missing extra
            raise UserError(
                f"[{name}] is configured but its library is missing ({exc.name})",
                hint=f"pip install -e '.[{_EXTRAS[name]}]'",
            ) from exc
        adapter = factory.build(config, deps)
        if adapter is not None:
            adapters.append(adapter)
    return adapters
