"""The ``[challenges]`` config section: admins, defaults, and recurring challenges."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config import validate_section
from core.errors import UserError
from core.store.challenges import Venue


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_venue(text: str) -> Venue:
    """``platform:channel`` as a ``Venue``; ``UserError`` when it is not that."""
    platform, sep, channel = text.strip().partition(":")
    if not sep or not platform or not channel:
        raise UserError(
            f"venue {text[:60]!r} is not platform:channel", hint="e.g. discord:1234 mastodon:public"
        )
    return Venue(platform.casefold(), channel)


def _venues(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        try:
            parse_venue(item)
        except UserError as exc:
            raise ValueError(str(exc)) from None
    return value


class RecurringSpec(_Section):
    """A challenge made again on a cron schedule, its theme drawn from ``themes``."""

    name: str = Field(min_length=1, max_length=64)
    cron: str
    themes: tuple[str, ...] = Field(min_length=1)
    prizes: tuple[int, ...] | None = None
    entry_hours: float | None = Field(default=None, gt=0)
    voting_hours: float | None = Field(default=None, gt=0)
    venues: tuple[str, ...] | None = None
    sponsor: str | None = None
    style: str | None = None
    model: str | None = None
    words: tuple[str, ...] = ()

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone=UTC)
        except ValueError as exc:
            raise ValueError(f"not a crontab line ({exc})") from None
        return value

    @field_validator("venues")
    @classmethod
    def _check_venues(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _venues(value)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after ``moment``."""
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(self.cron, timezone=UTC)
        found = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        return None if found is None else found.astimezone(UTC)

    def theme_for(self, occurrence: datetime) -> str:
        """The theme of one occurrence: drawn, but the same after any restart."""
        return random.Random(f"{self.name}:{occurrence.isoformat()}").choice(self.themes)


class ChallengesConfig(_Section):
    """Who may run challenges, the defaults new ones get, and the recurring ones."""

    enabled: bool = True
    admins: tuple[str, ...] = ()
    entries_per_user: int = Field(default=1, ge=1)
    claim_days: float = Field(default=7.0, gt=0)
    min_votes: int = Field(default=1, ge=0)
    ignore_voters: tuple[str, ...] = ()
    venues: tuple[str, ...] = ()
    sponsor: str = "bot"
    prizes: tuple[int, ...] = (500, 250, 100)
    entry_hours: float = Field(default=72.0, gt=0)
    voting_hours: float = Field(default=24.0, gt=0)
    retry_seconds: float = Field(default=300.0, gt=0)
    recurring: tuple[RecurringSpec, ...] = ()

    @field_validator("venues")
    @classmethod
    def _check_venues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _venues(value)

    @field_validator("prizes")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(p < 1 for p in value):
            raise ValueError("every prize must be at least 1 kudos")
        return value

    def is_admin(self, platform: str, user_id: str) -> bool:
        """Whether ``platform:user_id`` (or ``platform:*``) is listed in ``admins``."""
        return f"{platform}:{user_id}" in self.admins or f"{platform}:*" in self.admins

    def default_venues(self) -> tuple[Venue, ...]:
        """``venues`` parsed."""
        return tuple(parse_venue(v) for v in self.venues)

    def ignored(self) -> frozenset[str]:
        """Voter ids never counted, as ``platform:user_id``."""
        return frozenset(self.ignore_voters)


def parse_challenges_config(raw: Mapping[str, Any], where: str) -> ChallengesConfig:
    """The validated section; errors name the key and the file."""
    return validate_section("challenges", raw, ChallengesConfig, where)
