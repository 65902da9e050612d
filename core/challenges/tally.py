"""Counting votes and placing entries: pure functions over stored entries and read votes.

Rules (also in the README):
- a voter counts once per entry (platforms give sets of voters); a voter may vote for several
  entries; the entry's author and the ignored ids (the bot's own accounts) never count;
- where a platform gives only a score (Reddit), the score is the count, floored at 0;
- entries below ``min_votes`` win nothing;
- ties: entries with the same count share the places they occupy: the prizes of those places are
  added and split evenly, in whole kudos; the remainder goes to the earliest entry among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.contract import Votes


@dataclass(frozen=True, slots=True)
class Ranked:
    """One entry's place and prize; ``place`` is 1-based and shared by tied entries."""

    entry_id: str
    votes: int
    place: int
    prize: int


def count_votes(votes: Votes, *, author: str, ignored: frozenset[str] = frozenset()) -> int:
    """The votes that count for one entry (see the module rules)."""
    if votes.voters:
        return len(votes.voters - {author} - ignored)
    return max(votes.score or 0, 0)


def rank(
    counts: Sequence[tuple[str, int]], prizes: Sequence[int], *, min_votes: int = 1
) -> list[Ranked]:
    """Place entries given as ``(entry_id, votes)`` oldest first; every entry gets a line."""
    order = sorted(range(len(counts)), key=lambda i: (-counts[i][1], i))
    ranked: list[Ranked] = []
    position = 0
    while position < len(order):
        votes = counts[order[position]][1]
        group = [i for i in order[position:] if counts[i][1] == votes]
        eligible = votes >= min_votes
        pool = sum(prizes[position : position + len(group)]) if eligible else 0
        share, rest = divmod(pool, len(group))
        earliest = min(group)
        for i in group:
            prize = share + (rest if i == earliest else 0)
            ranked.append(Ranked(counts[i][0], votes, position + 1, prize))
        position += len(group)
    return ranked


def tally(
    entries: Sequence[tuple[str, str]],
    votes: Mapping[str, Votes],
    prizes: Sequence[int],
    *,
    ignored: frozenset[str] = frozenset(),
    min_votes: int = 1,
) -> list[Ranked]:
    """``entries`` as ``(entry_id, author id)`` oldest first; ``votes`` by entry id."""
    counts = [
        (entry_id, count_votes(votes.get(entry_id, Votes()), author=author, ignored=ignored))
        for entry_id, author in entries
    ]
    return rank(counts, prizes, min_votes=min_votes)
