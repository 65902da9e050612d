"""Builds the Lemmy adapter from the ``[lemmy]`` config section."""

from __future__ import annotations

from pydantic import ValidationError

from bots.deps import AdapterDeps
from bots.lemmy.adapter import LemmyAdapter
from bots.lemmy.client import LemmyClient
from bots.lemmy.config import LemmyConfig
from core.config import Config
from core.errors import UserError


def parse_config(config: Config) -> LemmyConfig | None:
    """The validated section, or ``None`` when it is absent or disabled."""
    section = config.raw_section("lemmy")
    if not section or section.get("enabled", True) is False:
        return None
    try:
        return LemmyConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"lemmy.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UserError(f"{config.path or '<config>'}: {problems}") from None


def build(config: Config, deps: AdapterDeps) -> LemmyAdapter | None:
    """The adapter, or ``None`` when ``[lemmy]`` is absent or ``enabled = false``."""
    section = parse_config(config)
    if section is None:
        return None
    client = LemmyClient(
        section.base_url,
        section.username,
        section.password(),
        timeout_s=section.request_timeout_s,
    )
    return LemmyAdapter(section, deps, client)
