"""Turns an invocation into horde requests through the catalog: the service's ``RequestPlanner``."""

from __future__ import annotations

import random

from core.catalog import Catalog, settings_from_config
from core.commands import DREAM
from core.config import Config
from core.errors import UserError
from core.grammar import parse_command, split_line
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
            # The adapter already said this is a dream: its text is the prompt even when it
            # opens with a command word ("styles of rain"); a leading trigger is dropped.
            request = parse_command(
                DREAM, dream_text(invocation.text or ""), self.catalog.vocabulary
            )
        if request is None or request.spec is None:
            raise UserError("nothing to draw: add a prompt", hint="e.g. draw me a lighthouse")
        policy = ChannelPolicy(nsfw_allowed=invocation.channel.nsfw_allowed)
        return self.catalog.build(request.spec, policy=policy, rng=rng, settings=self._settings)


def dream_text(text: str) -> str:
    """The prompt part of a line known to be a dream: without ``/dream`` or ``draw me``."""
    try:
        split = split_line(text)
    except UserError:
        return text  # "/something" that is no command: the user's words, as they are
    if split is not None and split[0] == DREAM.name:
        return split[1]
    return text
