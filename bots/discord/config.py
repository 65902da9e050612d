"""The ``[discord]`` config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TOKEN_ENV = "HORDEBOT_DISCORD_TOKEN"  # noqa: S105 - a variable name, not a secret


class DiscordConfig(BaseModel):
    """Where the bot token comes from, where commands are synced, what DMs may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # The token itself never sits in the config file: only the name of the env var holding it.
    token_env: str = DEFAULT_TOKEN_ENV
    allow_dms: bool = True
    nsfw_in_dms: bool = False
    # Empty: global commands (can take an hour to appear); ids: synced to those guilds at once.
    guild_ids: tuple[int, ...] = ()
    # Discord rate-limits message edits; the Horde bot edits its progress embed every 5 s.
    progress_interval_seconds: float = Field(default=5.0, ge=5.0)
    # Attempts for one REST call on 429/5xx before the core is told to try again later.
    send_attempts: int = Field(default=5, ge=1, le=20)
    retry_first_seconds: float = Field(default=1.0, gt=0)
