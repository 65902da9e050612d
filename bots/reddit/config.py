"""The ``[reddit]`` config section."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from core.errors import UserError


@dataclass(frozen=True, slots=True)
class Secrets:
    """The app's id and secret and the bot account's password, read from the environment."""

    client_id: str
    client_secret: str
    password: str

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"


class RedditConfig(BaseModel):
    """Where the bot listens, where it posts images, and how it logs in (a script app)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    client_id_env: str = "HORDEBOT_REDDIT_CLIENT_ID"
    client_secret_env: str = "HORDEBOT_REDDIT_CLIENT_SECRET"  # noqa: S105
    username: str = Field(min_length=1)
    password_env: str = "HORDEBOT_REDDIT_PASSWORD"  # noqa: S105
    user_agent: str = "hordebot:ai-horde-images:1 (by the hordebot project)"
    subreddits: tuple[str, ...] = ()
    allow_subreddits: tuple[str, ...] = ()
    deny_subreddits: tuple[str, ...] = ()
    nsfw_subreddits: tuple[str, ...] = ()
    image_subreddit: str = Field(min_length=1)
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"
    poll_interval_s: float = Field(default=15.0, gt=0)
    # Comments and messages older than this are history, not requests (the Horde bot uses 3 days).
    max_age_hours: float = Field(default=72.0, gt=0)
    retry_first_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=120.0, gt=0)
    retry_attempts: int = Field(default=5, ge=1)

    def secrets(self) -> Secrets:
        """The three secrets; a missing one is an error that names its env var."""
        values = []
        for env in (self.client_id_env, self.client_secret_env, self.password_env):
            value = os.environ.get(env, "")
            if not value:
                raise UserError(
                    f"[reddit] needs the env var {env}", hint="set it, or disable [reddit]"
                )
            values.append(value)
        return Secrets(*values)

    def allows(self, subreddit: str) -> bool:
        """Whether the bot answers in ``subreddit``: the deny list wins over the allow list."""
        name = subreddit.casefold()
        if name in {s.casefold() for s in self.deny_subreddits}:
            return False
        allow = {s.casefold() for s in self.allow_subreddits}
        return not allow or name in allow

    def nsfw_allowed(self, subreddit: str) -> bool:
        """Whether NSFW images may be asked for from ``subreddit``."""
        return subreddit.casefold() in {s.casefold() for s in self.nsfw_subreddits}
