"""Vote counting and placing: self-votes, ignored voters, scores, ties, minimum votes."""

from __future__ import annotations

from core.challenges.tally import count_votes, rank, tally
from core.contract import Votes


def test_self_vote_and_ignored_voters_do_not_count() -> None:
    votes = Votes(voters=frozenset({"d:author", "d:bot", "d:x", "d:y"}))
    assert count_votes(votes, author="d:author", ignored=frozenset({"d:bot"})) == 2


def test_score_is_used_when_voters_are_unknown_and_floored_at_zero() -> None:
    assert count_votes(Votes(score=5), author="r:a") == 5
    assert count_votes(Votes(score=-3), author="r:a") == 0


def test_places_follow_votes_and_prizes_follow_places() -> None:
    ranked = rank([("a", 1), ("b", 3), ("c", 2)], [500, 250, 100])
    assert [(r.entry_id, r.place, r.prize) for r in ranked] == [
        ("b", 1, 500),
        ("c", 2, 250),
        ("a", 3, 100),
    ]


def test_tied_entries_share_the_places_they_occupy_remainder_to_the_earliest() -> None:
    ranked = rank([("a", 2), ("b", 2), ("c", 1)], [501, 250, 100])
    prizes = {r.entry_id: (r.place, r.prize) for r in ranked}
    # 501 + 250 = 751 shared by two: 375 each, the odd kudos to the earlier entry a.
    assert prizes == {"a": (1, 376), "b": (1, 375), "c": (3, 100)}
    assert sum(r.prize for r in ranked) == 851


def test_entries_below_min_votes_win_nothing() -> None:
    ranked = rank([("a", 0), ("b", 1)], [500, 250], min_votes=1)
    assert {r.entry_id: r.prize for r in ranked} == {"a": 0, "b": 500}


def test_tally_uses_each_entry_author() -> None:
    entries = [("e1", "d:alice"), ("e2", "m:bob")]
    votes = {
        "e1": Votes(voters=frozenset({"d:alice"})),
        "e2": Votes(voters=frozenset({"m:carol"})),
    }
    ranked = tally(entries, votes, [100, 50])
    assert {r.entry_id: (r.votes, r.prize) for r in ranked} == {"e1": (0, 0), "e2": (1, 100)}
