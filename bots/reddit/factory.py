"""Builds the Reddit adapter from the ``[reddit]`` config section."""

from __future__ import annotations

from pydantic import ValidationError

from bots.deps import AdapterDeps
from bots.reddit.adapter import RedditAdapter
from bots.reddit.config import RedditConfig
from core.config import Config
from core.errors import UserError


def parse_config(config: Config) -> RedditConfig | None:
    """The validated section, or ``None`` when it is absent or disabled."""
    section = config.raw_section("reddit")
    if not section or section.get("enabled", True) is False:
        return None
    try:
        return RedditConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"reddit.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UserError(f"{config.path or '<config>'}: {problems}") from None


def build(config: Config, deps: AdapterDeps) -> RedditAdapter | None:
    """The adapter, or ``None`` when ``[reddit]`` is absent or ``enabled = false``."""
    section = parse_config(config)
    if section is None:
        return None
    return RedditAdapter(section, deps, section.secrets())
