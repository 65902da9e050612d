"""What a challenge posts: the announcement, the call to vote, the results, listings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.challenges.rules import Rules
from core.store.challenges import Challenge, Entry, Payout, Standing


def when(moment: datetime) -> str:
    """A time as the posts show it (always UTC)."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def prizes_text(prizes: Sequence[int]) -> str:
    """``1st 500, 2nd 250 kudos``."""
    names = ("1st", "2nd", "3rd")
    parts = [f"{names[i] if i < 3 else f'{i + 1}th'} {p}" for i, p in enumerate(prizes)]
    return ", ".join(parts) + " kudos" if parts else "no prizes"


def announcement(challenge: Challenge) -> str:
    """The opening post."""
    rules = Rules.from_json(challenge.rules).describe()
    lines = [
        f"Prompt challenge: {challenge.theme}",
        f"Enter with /dream <your prompt> --challenge until {when(challenge.entries_close_at)}"
        + (f"; {rules}" if rules else "")
        + f"; {challenge.entries_per_user} entr{'y' if challenge.entries_per_user == 1 else 'ies'}"
        " per person.",
        f"Vote on the entries until {when(challenge.voting_close_at)}. "
        f"Prizes: {prizes_text(challenge.prizes)}. Challenge {challenge.id[:8]}.",
    ]
    return "\n".join(lines)


def voting(challenge: Challenge, entries: int) -> str:
    """The post when entries close."""
    return (
        f"Entries for “{challenge.theme}” are closed ({entries} entr"
        f"{'y' if entries == 1 else 'ies'}). Vote for your favourites (a reaction, a favourite, "
        f"an upvote) until {when(challenge.voting_close_at)}; votes on your own entry don't count."
    )


def results(challenge: Challenge, entries: Sequence[Entry], payouts: Sequence[Payout]) -> str:
    """The results post: places, votes, credits, prizes."""
    by_id = {e.id: e for e in entries}
    lines = [f"Results of the prompt challenge “{challenge.theme}”:"]
    if not payouts:
        lines.append("no entry got enough votes for a prize this time.")
    for payout in payouts:
        entry = by_id.get(payout.entry_id)
        if entry is None:
            continue
        name = entry.display_name or entry.platform_user_id
        status = {"paid": "paid", "unclaimed": "claim it with /login"}.get(payout.state, "")
        lines.append(
            f"#{payout.place} {name} on {entry.platform} ({entry.votes or 0} votes): "
            f"“{entry.prompt[:120]}”, {payout.amount} kudos" + (f", {status}" if status else "")
        )
    lines.append(f"{len(entries)} entries. Thank you all!")
    return "\n".join(lines)


def listing(challenges: Sequence[Challenge]) -> str:
    """``/challenge list``."""
    if not challenges:
        return "no challenges are running or planned"
    return "\n".join(
        f"{c.id[:8]} [{c.state}] {c.theme}: entries until {when(c.entries_close_at)}, "
        f"votes until {when(c.voting_close_at)}"
        for c in challenges
    )


def leaderboard(standings: Sequence[Standing]) -> str:
    """``/challenge leaderboard``."""
    if not standings:
        return "no prizes have been paid yet"
    return "Challenge leaderboard:\n" + "\n".join(
        f"{i}. {s.display_name or s.platform_user_id} ({s.platform}): {s.kudos} kudos, "
        f"{s.wins} prize{'s' if s.wins != 1 else ''}"
        for i, s in enumerate(standings, 1)
    )
