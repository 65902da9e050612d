"""The ``[mastodon]`` config section."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import UserError

VISIBILITIES = ("public", "unlisted", "private", "direct")


class MastodonConfig(BaseModel):
    """Where the bot's account lives and how it listens and answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    api_base_url: str = ""
    # The token itself never sits in the config file, only the name of the variable holding it.
    access_token_env: str = "HORDEBOT_MASTODON_TOKEN"  # noqa: S105 - a variable's name
    streaming: bool = True
    poll_interval_s: float = Field(default=30.0, gt=0)
    public_cooldown_minutes: float = Field(default=10.0, ge=0)
    nsfw_allowed: bool = False
    content_warning: str = "NSFW: AI-generated images"
    catch_up_max_age_minutes: float = Field(default=1440.0, gt=0)
    stream_stale_s: float = Field(default=90.0, gt=0)
    request_timeout_s: float = Field(default=60.0, gt=0)
    retry_attempts: int = Field(default=5, ge=1)
    retry_max_wait_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _needs_a_server(self) -> MastodonConfig:
        if self.enabled and not self.api_base_url.strip():
            raise ValueError("[mastodon] api_base_url is required, e.g. https://mastodon.social")
        return self

    def token(self) -> str:
        """The access token from the environment; a one-line error naming the variable if unset."""
        value = os.environ.get(self.access_token_env, "").strip()
        if not value:
            raise UserError(
                f"[mastodon] set the environment variable {self.access_token_env} "
                "to the bot account's access token"
            )
        return value
