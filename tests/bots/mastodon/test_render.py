"""Replies → statuses: visibility, media, content warnings, threads, idempotency keys."""

from __future__ import annotations

from bots.mastodon.render import (
    plan_answer,
    plan_error,
    plan_reply,
    quiet_visibility,
    reply_visibility,
)
from core.messages import OutImage, Reply

TARGET = {"status_id": "9001", "acct": "alice", "visibility": "public"}
CW = "NSFW: AI-generated images"


def images(count: int, *, nsfw: bool = False) -> tuple[OutImage, ...]:
    return tuple(OutImage(b"img%d" % i, alt_text="a fox", nsfw=nsfw) for i in range(count))


def test_visibility_is_kept_and_public_is_lowered_inside_the_window() -> None:
    for asked in ("direct", "private", "unlisted"):
        assert reply_visibility(asked, last_public_post=100.0, now=101.0, window_s=600) == asked
    assert reply_visibility("public", last_public_post=None, now=0.0, window_s=600) == "public"
    assert reply_visibility("public", last_public_post=0.0, now=599.0, window_s=600) == "unlisted"
    assert reply_visibility("public", last_public_post=0.0, now=601.0, window_s=600) == "public"
    assert reply_visibility("limited", last_public_post=None, now=0.0, window_s=600) == "unlisted"


def test_answers_never_go_to_public_timelines() -> None:
    assert quiet_visibility("public") == "unlisted"
    assert quiet_visibility("direct") == "direct"
    assert quiet_visibility("private") == "private"


def test_images_go_four_per_status_in_a_thread_with_stable_keys() -> None:
    reply = Reply("gen-1", text="“a fox”", images=images(5))
    plans = plan_reply(reply, TARGET, visibility="public", content_warning=CW)
    assert [len(p.media) for p in plans] == [4, 1]
    assert plans[0].text.startswith("@alice “a fox”")
    assert plans[1].text == "@alice (2/2)"
    assert all(p.visibility == "public" and not p.sensitive and not p.spoiler_text for p in plans)
    again = plan_reply(reply, TARGET, visibility="unlisted", content_warning=CW)
    assert [p.idempotency_key for p in plans] == [p.idempotency_key for p in again]
    assert len({p.idempotency_key for p in plans}) == 2
    other = plan_reply(
        Reply("gen-2", images=images(1)), TARGET, visibility="public", content_warning=CW
    )
    assert other[0].idempotency_key != plans[0].idempotency_key


def test_nsfw_images_are_sensitive_behind_a_content_warning() -> None:
    reply = Reply("gen-1", text="“x”", images=images(2, nsfw=True))
    [plan] = plan_reply(reply, TARGET, visibility="direct", content_warning=CW)
    assert plan.sensitive
    assert plan.spoiler_text == CW
    assert plan.visibility == "direct"


def test_an_error_reply_is_one_unlisted_line() -> None:
    reply = Reply("gen-1", error="no worker could finish this request;\ntry again later")
    [plan] = plan_reply(reply, TARGET, visibility="public", content_warning=CW)
    assert plan.text == "@alice no worker could finish this request; try again later"
    assert plan.visibility == "unlisted"
    assert not plan.media


def test_long_answers_become_a_short_thread_of_fitting_statuses() -> None:
    text = "\n".join(f"line {i} " + "x" * 60 for i in range(30))
    plans = plan_answer(text, TARGET, key="9001")
    assert 1 < len(plans) <= 4
    assert all(len(p.text) <= 500 and p.text.startswith("@alice ") for p in plans)
    assert plans[0].visibility == "unlisted"
    assert plan_error("unknown command /paint", TARGET, key="9001").text == (
        "@alice unknown command /paint"
    )
