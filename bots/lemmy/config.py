"""The ``[lemmy]`` config section; the password comes from the env var it names."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from core.errors import UserError


class LemmyConfig(BaseModel):
    """Which instance and account the bot uses, how often it looks, and where NSFW may go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    instance_url: str
    username: str
    # The name of the env var holding the password, not a password.
    password_env: str = "HORDEBOT_LEMMY_PASSWORD"  # noqa: S105
    poll_interval_s: float = Field(default=10.0, gt=0)
    # A community (name, or name@instance) that gets a post with every result; none when empty.
    gallery_community: str | None = None
    # Only requests made in these communities may be NSFW, and their images go behind a spoiler.
    nsfw_communities: tuple[str, ...] = ()
    mark_read: bool = True
    request_timeout_s: float = Field(default=30.0, gt=0)

    @property
    def base_url(self) -> str:
        """The instance URL without a trailing slash."""
        return self.instance_url.rstrip("/")

    def password(self) -> str:
        """The account password from the environment; a clear error naming the variable if unset."""
        value = os.environ.get(self.password_env, "")
        if not value:
            raise UserError(f"[lemmy] needs the bot's password in the env var {self.password_env}")
        return value

    def nsfw_allowed_in(self, community_name: str, community_actor_id: str = "") -> bool:
        """Whether ``nsfw_communities`` lists this community (by name or ``name@host``)."""
        names = {name.casefold().lstrip("!") for name in self.nsfw_communities}
        if community_name.casefold() in names:
            return True
        host = community_actor_id.split("/")[2] if community_actor_id.count("/") >= 2 else ""
        return bool(host) and f"{community_name}@{host}".casefold() in names
