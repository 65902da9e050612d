"""The texts the bot posts, and the ``[reddit]`` section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bots.reddit.config import RedditConfig
from bots.reddit.render import PostedImages, post_title, result_comment, token
from core.errors import UserError
from core.messages import OutImage, Reply

POSTED = PostedImages("t3_p", "https://reddit.test/r/imgs/comments/p/x/", ("https://m/1.png",))


def reply(*, nsfw: bool = False) -> Reply:
    image = OutImage(b"x", alt_text="a lighthouse", nsfw=nsfw)
    return Reply(
        "0123456789ab",
        text="“a lighthouse”",
        images=(image,),
        metadata={"prompt": "a lighthouse", "seed": "7"},
    )


def test_the_comment_links_the_post_and_the_images_and_carries_the_marker() -> None:
    text = result_comment(reply(), [POSTED], token("0123456789ab"), "imgs")
    assert "[Image 1](https://m/1.png)" in text
    assert "(https://reddit.test/r/imgs/comments/p/x/)" in text
    assert "seed: 7" in text
    assert text.rstrip().endswith("hordebot:01234567)")
    assert "NSFW" not in text


def test_nsfw_images_are_said_so() -> None:
    assert "**NSFW**" in result_comment(reply(nsfw=True), [POSTED], "hordebot:x", "imgs")


def test_an_error_reply_is_one_line_and_the_marker() -> None:
    text = result_comment(Reply("g", error="no worker could finish"), [], "hordebot:g", "imgs")
    assert text.splitlines()[0] == "no worker could finish"


def test_a_long_prompt_makes_a_title_within_300_characters() -> None:
    long = Reply("g", metadata={"prompt": "x" * 500})
    assert len(post_title(long, 1, 2)) <= 300
    assert post_title(long, 1, 2).endswith("(2/2)")


def test_deny_wins_over_allow() -> None:
    config = RedditConfig(
        username="b", image_subreddit="i", allow_subreddits=("Pics",), deny_subreddits=("pics",)
    )
    assert not config.allows("PICS")
    assert RedditConfig(username="b", image_subreddit="i").allows("anything")


def test_a_missing_secret_names_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HORDEBOT_REDDIT_CLIENT_ID", "id")
    monkeypatch.setenv("HORDEBOT_REDDIT_CLIENT_SECRET", "secret")
    monkeypatch.delenv("HORDEBOT_REDDIT_PASSWORD", raising=False)
    with pytest.raises(UserError, match="HORDEBOT_REDDIT_PASSWORD"):
        RedditConfig(username="b", image_subreddit="i").secrets()


def test_an_unknown_key_is_an_error() -> None:
    with pytest.raises(ValidationError):
        RedditConfig.model_validate({"username": "b", "image_subreddit": "i", "subreddit": "x"})
