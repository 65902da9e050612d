"""Which comments and messages become requests: pure, no server."""

from __future__ import annotations

from bots.reddit.config import RedditConfig
from bots.reddit.inbound import Item, Source, read_item
from core.messages import Invocation

BOT = "hordebot"
CONFIG = RedditConfig(
    username=BOT,
    image_subreddit="hordebot_images",
    subreddits=("pics", "spam"),
    allow_subreddits=("pics", "art", "spam"),
    deny_subreddits=("spam",),
    nsfw_subreddits=("art",),
)


def item(body: str, source: Source = Source.STREAM, subreddit: str | None = "pics") -> Item:
    return Item("t1_abc", "alice", body, subreddit, source, 0.0)


def test_a_mention_with_the_trigger_is_a_dream_without_the_mention() -> None:
    got = read_item(item("/u/HordeBot draw me a lighthouse --steps 4"), bot=BOT, config=CONFIG)
    assert isinstance(got, Invocation)
    assert (got.command, got.text) == ("dream", "a lighthouse --steps 4")
    assert got.event_id == "t1_abc"
    assert got.target.data["thing"] == "t1_abc"
    assert not got.channel.nsfw_allowed


def test_a_strangers_comment_starting_with_a_command_word_is_ignored() -> None:
    assert read_item(item("help me with this lens"), bot=BOT, config=CONFIG) is None
    assert read_item(item("/r/pics is great"), bot=BOT, config=CONFIG) is None


def test_the_bot_named_with_an_unknown_command_gets_the_error() -> None:
    got = read_item(item("u/hordebot /imagin a cat"), bot=BOT, config=CONFIG)
    assert isinstance(got, str)
    assert "unknown command /imagin" in got


def test_a_denied_subreddit_is_ignored_even_for_mentions() -> None:
    denied = item("u/hordebot draw me a cat", Source.MENTION, "spam")
    assert read_item(denied, bot=BOT, config=CONFIG) is None
    elsewhere = item("u/hordebot draw me a cat", Source.MENTION, "cooking")
    assert read_item(elsewhere, bot=BOT, config=CONFIG) is None


def test_login_in_a_comment_is_refused_without_echoing_the_key() -> None:
    got = read_item(item("u/hordebot /login SECRETKEY123"), bot=BOT, config=CONFIG)
    assert isinstance(got, str)
    assert "private message" in got
    assert "SECRETKEY123" not in got


def test_login_in_a_private_message_goes_to_the_core_as_a_dm() -> None:
    got = read_item(item("/login SECRETKEY123", Source.MESSAGE, None), bot=BOT, config=CONFIG)
    assert isinstance(got, Invocation)
    assert got.command == "login"
    assert got.channel.is_dm


def test_a_reply_to_the_bot_may_use_a_bare_command_word() -> None:
    got = read_item(item("styles anime", Source.REPLY), bot=BOT, config=CONFIG)
    assert isinstance(got, Invocation)
    assert got.command == "styles"


def test_the_bots_own_comments_are_ignored() -> None:
    own = Item("t1_x", "HordeBot", "draw me a cat", "pics", Source.STREAM, 0.0)
    assert read_item(own, bot=BOT, config=CONFIG) is None


def test_nsfw_follows_the_subreddit_list() -> None:
    got = read_item(item("draw me a cat", subreddit="art"), bot=BOT, config=CONFIG)
    assert isinstance(got, Invocation)
    assert got.channel.nsfw_allowed
