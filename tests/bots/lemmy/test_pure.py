"""The pure parts of the Lemmy adapter: mention stripping, invocations, markdown, config."""

from __future__ import annotations

import pytest

from bots.lemmy import render
from bots.lemmy.client import LemmyError, classify, parse_version
from bots.lemmy.config import LemmyConfig
from bots.lemmy.inbound import command_text, to_invocation
from bots.lemmy.wire import CommentView
from core.errors import UserError

CONFIG = LemmyConfig(
    instance_url="https://lemmy.test/", username="hordebot", nsfw_communities=("nsfwart",)
)


def view(
    content: str, *, author: str = "alice", community: str = "art", path: str = "0.7"
) -> CommentView:
    comment_id = int(path.rsplit(".", 1)[-1])
    return CommentView.model_validate(
        {
            "comment": {
                "id": comment_id,
                "creator_id": 2,
                "post_id": 5,
                "content": content,
                "path": path,
            },
            "creator": {"id": 2, "name": author, "actor_id": f"https://lemmy.test/u/{author}"},
            "post": {"id": 5, "name": "p", "creator_id": 2, "community_id": 3},
            "community": {
                "id": 3,
                "name": community,
                "actor_id": f"https://lemmy.test/c/{community}",
            },
            "extra_field": {"ignored": True},
        }
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("@hordebot draw me a cat", "draw me a cat"),
        ("@HordeBot@lemmy.test draw me a cat", "draw me a cat"),
        ("[@hordebot@lemmy.test](https://lemmy.test/u/hordebot) draw me a cat", "draw me a cat"),
        ("!hordebot help", "help"),
        ("hey @hordebot could you draw me a cat", "hey could you draw me a cat"),
        ("@hordebotx draw me a cat", "@hordebotx draw me a cat"),
        ("mail me at me@hordebot.org", "mail me at me@hordebot.org"),
    ],
)
def test_only_the_bots_mention_is_stripped(content: str, expected: str) -> None:
    assert command_text(content, "hordebot") == expected


def test_a_mention_with_a_trigger_is_a_dream_with_a_stable_event_id() -> None:
    invocation = to_invocation(
        view("@hordebot@lemmy.test could you draw me a lighthouse --steps 4"), CONFIG
    )
    assert invocation is not None
    assert invocation.command == "dream"
    assert invocation.text == "a lighthouse --steps 4"
    assert invocation.event_id == "comment-7"
    assert invocation.user.user_id == "https://lemmy.test/u/alice"
    assert invocation.target.data["post_id"] == 5
    assert invocation.target.data["comment_id"] == 7
    assert invocation.channel.nsfw_allowed is False


def test_nsfw_is_allowed_only_in_listed_communities() -> None:
    invocation = to_invocation(view("@hordebot draw me a cat", community="nsfwart"), CONFIG)
    assert invocation is not None
    assert invocation.channel.nsfw_allowed
    assert invocation.target.data["nsfw_allowed"] is True
    assert CONFIG.nsfw_allowed_in("NSFWArt")
    assert not CONFIG.nsfw_allowed_in("art", "https://lemmy.test/c/art")
    hosted = LemmyConfig(instance_url="x", username="b", nsfw_communities=("!pics@lemmy.test",))
    assert hosted.nsfw_allowed_in("pics", "https://lemmy.test/c/pics")
    assert not hosted.nsfw_allowed_in("pics", "https://other.test/c/pics")


def test_chatter_and_the_bots_own_comments_are_not_commands() -> None:
    assert to_invocation(view("@hordebot thanks, lovely!"), CONFIG) is None
    assert to_invocation(view("draw me a cat", author="hordebot"), CONFIG) is None


def test_an_unknown_slash_command_still_reaches_the_core() -> None:
    invocation = to_invocation(view("@hordebot /drwa a cat"), CONFIG)
    assert invocation is not None
    assert (invocation.command, invocation.text) == ("drwa", "a cat")


def test_a_bare_command_word_after_the_mention_is_that_command() -> None:
    invocation = to_invocation(view("@hordebot styles anime", path="0.3.9"), CONFIG)
    assert invocation is not None
    assert (invocation.command, invocation.text) == ("styles", "anime")


def test_comment_parent_comes_from_the_path() -> None:
    assert view("x", path="0.3.9").comment.parent_id == 3
    assert view("x", path="0.9").comment.parent_id is None


def test_result_comment_has_images_marker_and_no_spoiler_when_sfw() -> None:
    body = render.result_comment(
        "“a cat”", [("https://i/1.webp", "a [cat]\nhere")], spoiler=False, key="g1"
    )
    assert "![a cat here](https://i/1.webp)" in body
    assert "::: spoiler" not in body
    assert render.has_marker(body, "g1")
    assert not render.has_marker(body, "g")


def test_nsfw_images_go_behind_a_spoiler_block() -> None:
    body = render.result_comment("x", [("https://i/1.webp", "a")], spoiler=True, key="g1")
    start = body.index("::: spoiler NSFW\n")
    assert body.index("![a](https://i/1.webp)") > start
    assert body.index("\n:::", start + 5) > body.index("![a]")


def test_answers_are_cut_to_what_lemmy_takes() -> None:
    body = render.answer_comment("x" * 20_000, "answer-comment-1")
    assert len(body) < 10_000
    assert render.has_marker(body, "answer-comment-1")


def test_config_refuses_unknown_keys_and_needs_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        LemmyConfig.model_validate({"instance_url": "x", "username": "b", "poll_interval": 3})
    monkeypatch.delenv("HORDEBOT_LEMMY_PASSWORD", raising=False)
    with pytest.raises(UserError, match="HORDEBOT_LEMMY_PASSWORD"):
        CONFIG.password()
    monkeypatch.setenv("HORDEBOT_LEMMY_PASSWORD", "s3cret")
    assert CONFIG.password() == "s3cret"


def test_versions_and_retry_verdicts() -> None:
    assert parse_version("0.19.13") == (0, 19, 13)
    assert parse_version("0.19.3-beta.1") == (0, 19, 3)
    assert classify(LemmyError(400, "rate_limit_error", path="/x")).retry
    assert classify(LemmyError(503, "", path="/x")).retry
    assert not classify(LemmyError(400, "couldnt_find_post", path="/x")).retry
    assert not classify(ValueError("x")).retry
