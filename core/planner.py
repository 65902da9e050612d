"""Turns an invocation into horde requests through the catalog: the service's ``RequestPlanner``."""

from __future__ import annotations

import random

from core.catalog import Catalog, settings_from_config
from core.config import Config
from core.errors import UserError
from core.messages import Invocation
from core.payload import BuildSettings, BuiltRequest
from core.policy import ChannelPolicy
from core.request import CommandRequest


class CatalogPlanner:
    """Text and structured options go through the same grammar and builder."""

    def __init__(self, catalog: Catalog, settings: BuildSettings) -> None:
        self.catalog = catalog
        self._settings = settings

    @classmethod
    def from_config(cls, config: Config) -> CatalogPlanner:
        """Load the catalog the config names (does I/O) with the config's defaults."""
        return cls(Catalog.from_config(config), settings_from_config(config))

    def plan(self, invocation: Invocation, *, rng: random.Random) -> list[BuiltRequest]:
        """The horde requests for an image command; ``UserError`` for input to change."""
        request: CommandRequest | None
        if invocation.options is not None:
            request = self.catalog.parse_options(invocation.command, invocation.options)
        else:
            request = self.catalog.parse(invocation.text or "", bare_is_dream=True)
        if request is None or request.spec is None:
            raise UserError("nothing to draw: add a prompt", hint="e.g. draw me a lighthouse")
        policy = ChannelPolicy(nsfw_allowed=invocation.channel.nsfw_allowed)
        return self.catalog.build(request.spec, policy=policy, rng=rng, settings=self._settings)
