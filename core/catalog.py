"""The style library and model reference a deployment uses, with the grammar's vocabulary.

Loading does I/O (network, cache, local files: see ``styles.library.load_library`` and
``core.model_reference.load_model_reference``); everything after that is pure. The CLI and the
service hold one ``Catalog`` and turn text or structured input into horde requests through it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import UserError
from core.grammar import NameIndex, Vocabulary, parse_line, parse_options
from core.model_reference import ModelReference, load_model_reference
from core.payload import DEFAULT_SETTINGS, BuildSettings, BuiltRequest, build_requests
from core.policy import ChannelPolicy
from core.request import CommandRequest, RequestSpec
from styles.library import Style, StyleLibrary, load_library


@dataclass(frozen=True)
class Catalog:
    """A style library and a model reference, plus the names the grammar matches against."""

    library: StyleLibrary
    reference: ModelReference
    vocabulary: Vocabulary = field(init=False)

    def __post_init__(self) -> None:
        vocabulary = Vocabulary(
            styles=NameIndex(self.library.names()), models=NameIndex(self.reference.names())
        )
        object.__setattr__(self, "vocabulary", vocabulary)

    @classmethod
    def from_config(cls, config: Config) -> Catalog:
        """Load both from the config's ``[styles]`` and ``[models]`` sources (does I/O)."""
        styles, models = config.styles, config.models
        return cls(
            library=load_library(styles.source, Path(styles.cache_dir), styles.refresh_seconds),
            reference=load_model_reference(
                models.source, Path(models.cache_dir), models.refresh_seconds
            ),
        )

    def parse(self, text: str, *, bare_is_dream: bool = False) -> CommandRequest | None:
        """A line of text as a command (see ``core.grammar.parse_line``)."""
        return parse_line(text, self.vocabulary, bare_is_dream=bare_is_dream)

    def parse_options(self, command: str, options: Mapping[str, Any]) -> CommandRequest:
        """Structured input as a command (see ``core.grammar.parse_options``)."""
        return parse_options(command, options, self.vocabulary)

    def build(
        self,
        spec: RequestSpec,
        *,
        policy: ChannelPolicy,
        rng: random.Random,
        settings: BuildSettings = DEFAULT_SETTINGS,
        usable: Callable[[Style], bool] | None = None,
    ) -> list[BuiltRequest]:
        """The horde requests for a dream (see ``core.payload.build_requests``)."""
        return build_requests(
            spec,
            library=self.library,
            reference=self.reference,
            policy=policy,
            rng=rng,
            settings=settings,
            usable=usable,
        )

    def dream(
        self,
        text: str,
        *,
        policy: ChannelPolicy,
        rng: random.Random,
        settings: BuildSettings = DEFAULT_SETTINGS,
    ) -> list[BuiltRequest]:
        """Text known to be a dream (``draw me ...``, ``/dream ...`` or a bare prompt) built."""
        request = self.parse(text, bare_is_dream=True)
        if request is None or request.spec is None:
            name = request.command if request else "nothing"
            raise UserError(f"that is /{name}, not a drawing request", hint="start with /dream")
        return self.build(request.spec, policy=policy, rng=rng, settings=settings)


def settings_from_config(config: Config) -> BuildSettings:
    """The build defaults a config's ``[policy]`` section sets."""
    policy = config.policy
    return BuildSettings(
        default_style=policy.default_style,
        default_model=policy.default_model or DEFAULT_SETTINGS.default_model,
    )
