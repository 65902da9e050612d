"""``build(config, deps)``: the Mastodon adapter, or ``None`` when ``[mastodon]`` is off."""

from __future__ import annotations

from pydantic import ValidationError

from bots.deps import AdapterDeps
from bots.mastodon.adapter import MastodonAdapter
from bots.mastodon.config import MastodonConfig
from core.config import Config
from core.errors import UserError


def parse_section(section: dict[str, object], origin: str = "<config>") -> MastodonConfig:
    """Validate a ``[mastodon]`` table; every problem is reported with its key."""
    try:
        return MastodonConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"mastodon.{'.'.join(str(p) for p in err['loc']) or '(section)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise UserError(f"{origin}: {problems}") from None


def build(config: Config, deps: AdapterDeps) -> MastodonAdapter | None:
    """The adapter the config asks for; the token is read from its env var now, so a missing
    one stops the start with a line naming the variable."""
    section = config.raw_section("mastodon")
    if not section or section.get("enabled") is False:
        return None
    settings = parse_section(section, str(config.path or "<config>"))
    settings.token()
    return MastodonAdapter(settings, deps)
