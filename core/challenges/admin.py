"""``/challenge``: list, show, results, leaderboard for all; create, edit, cancel for admins."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from core.challenges import texts
from core.challenges.config import parse_venue
from core.challenges.rules import Rules
from core.challenges.runner import ACTIVE, ChallengeRunner
from core.errors import UserError
from core.messages import Invocation
from core.request import ArgValue
from core.store.challenges import Venue

ADMIN_ACTIONS = ("create", "edit", "cancel")
_RELATIVE = re.compile(r"\+(\d+)([mhd])")


async def answer(
    runner: ChallengeRunner, invocation: Invocation, args: Mapping[str, ArgValue]
) -> str:
    """The text answering one ``/challenge`` command; ``UserError`` for what to change."""
    action = str(args.get("action", "list"))
    if action in ADMIN_ACTIONS and not runner.config.is_admin(
        invocation.platform, invocation.user.user_id
    ):
        raise UserError(f"only challenge admins may {action} challenges", hint="ask an admin")
    wanted = args.get("id")
    if action == "list":
        return texts.listing(await runner.repo.listed(ACTIVE))
    if action == "leaderboard":
        return texts.leaderboard(await runner.repo.leaderboard())
    if action == "create":
        return await _create(runner, invocation, args)
    if wanted is None:
        raise UserError(f"/challenge {action} needs a challenge id", hint="see /challenge list")
    if action == "cancel":
        cancelled = await runner.cancel(str(wanted))
        return f"challenge {cancelled.id[:8]} “{cancelled.theme}” is cancelled"
    if action == "edit":
        return await _edit(runner, str(wanted), args)
    challenge = await runner.repo.get(str(wanted))
    if challenge is None:
        raise UserError(f"no challenge {str(wanted)[:40]!r}", hint="see /challenge list")
    if action == "results":
        if challenge.state not in ("paid", "announced"):
            raise UserError(
                f"challenge {challenge.id[:8]} is {challenge.state}; results come after voting "
                f"closes at {texts.when(challenge.voting_close_at)}"
            )
        entries = await runner.repo.entries(challenge.id)
        return texts.results(challenge, entries, await runner.repo.payouts(challenge.id))
    return f"[{challenge.state}] " + texts.announcement(challenge)


async def _create(
    runner: ChallengeRunner, invocation: Invocation, args: Mapping[str, ArgValue]
) -> str:
    theme = args.get("theme")
    if theme is None:
        raise UserError("a challenge needs a theme", hint="/challenge create --theme TEXT")
    created = await runner.create(
        theme=str(theme),
        created_by=f"{invocation.platform}:{invocation.user.user_id}",
        opens_at=_start(args.get("starts"), runner.now()),
        entry_hours=_hours(args.get("entry_hours")),
        voting_hours=_hours(args.get("voting_hours")),
        prizes=_prizes(args.get("prizes")),
        venues=_venues(args.get("venues")),
        sponsor=_sponsor(args.get("sponsor")),
        rules=_rules(args),
        entries_per_user=_int(args.get("per_user")),
    )
    if created is None:
        raise RuntimeError("a fresh challenge id collided")
    # Due now when it starts now: announce without waiting for the scheduler's next tick.
    await runner.advance(created.id)
    opens = texts.when(created.opens_at)
    return f"challenge {created.id[:8]} created: “{created.theme}”, opens {opens}"


async def _edit(runner: ChallengeRunner, challenge_id: str, args: Mapping[str, ArgValue]) -> str:
    current = await runner.repo.get(challenge_id)
    if current is None:
        raise UserError(f"no challenge {challenge_id[:40]!r}", hint="see /challenge list")
    changes: dict[str, object] = {}
    if "theme" in args:
        changes["theme"] = str(args["theme"]).strip()
    if "prizes" in args:
        changes["prizes"] = _prizes(args["prizes"])
    if "sponsor" in args:
        changes["sponsor"] = _sponsor(args["sponsor"])
    if "per_user" in args:
        changes["entries_per_user"] = int(args["per_user"])
    if "venues" in args:
        changes["venues"] = [v.to_json() for v in _venues(args["venues"]) or ()]
    if {"words", "style", "model"} & set(args):
        old = Rules.from_json(current.rules)
        new = _rules(args)
        changes["rules"] = Rules(
            style=new.style if "style" in args else old.style,
            model=new.model if "model" in args else old.model,
            words=new.words if "words" in args else old.words,
        ).to_json()
    opens = current.opens_at
    if "starts" in args:
        opens = _start(args.get("starts"), runner.now()) or runner.now()
    entry = timedelta(hours=_hours(args.get("entry_hours")) or 0) or (
        current.entries_close_at - current.opens_at
    )
    voting = timedelta(hours=_hours(args.get("voting_hours")) or 0) or (
        current.voting_close_at - current.entries_close_at
    )
    changes.update(
        opens_at=opens, entries_close_at=opens + entry, voting_close_at=opens + entry + voting
    )
    edited = await runner.edit(current.id, **changes)
    return f"challenge {edited.id[:8]} changed: " + texts.announcement(edited)


def _start(value: ArgValue | None, now: datetime) -> datetime | None:
    if value is None or str(value) == "now":
        return None
    text = str(value)
    relative = _RELATIVE.fullmatch(text)
    if relative:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[relative[2]]
        return now + timedelta(**{unit: int(relative[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--starts {text[:40]!r} is not a time", hint="write now, +2h, +1d or 2025-06-01T18:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hours(value: ArgValue | None) -> float | None:
    return None if value is None else float(value)


def _int(value: ArgValue | None) -> int | None:
    return None if value is None else int(value)


def _prizes(value: ArgValue | None) -> list[int] | None:
    if value is None:
        return None
    words = str(value).replace(",", " ").split()
    if not words or not all(w.isdigit() and int(w) > 0 for w in words):
        raise UserError("--prizes takes whole kudos amounts", hint="e.g. --prizes 500 250 100")
    return [int(w) for w in words]


def _venues(value: ArgValue | None) -> list[Venue] | None:
    return None if value is None else [parse_venue(v) for v in str(value).split()]


def _sponsor(value: ArgValue | None) -> str | None:
    if value is None:
        return None
    text = str(value)
    if text != "bot" and ":" not in text:
        raise UserError("--sponsor is bot or platform:user_id", hint="e.g. --sponsor discord:1234")
    return text


def _rules(args: Mapping[str, ArgValue]) -> Rules:
    words = str(args.get("words", "")).replace(",", " ").split()
    style, model = args.get("style"), args.get("model")
    return Rules(
        style=str(style).strip() if style else None,
        model=str(model).strip() if model else None,
        words=tuple(words),
    )
