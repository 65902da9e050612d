"""Mention notifications → invocations: what is asked, who asked, where to answer."""

from __future__ import annotations

from typing import Any

from bots.mastodon.inbound import id_order, is_public_login, parse_mention
from tests.bots.mastodon.test_status_text import MENTION

BOT_ID = "100"


def notification(
    text: str, *, visibility: str = "public", kind: str = "mention", author: str = "7"
) -> dict[str, Any]:
    account = {"id": author, "acct": "alice@other.example", "display_name": "Alice"}
    return {
        "id": "5001",
        "type": kind,
        "created_at": "2026-11-30T12:00:00.000Z",
        "account": account,
        "status": {
            "id": "9001",
            "content": f"<p>{MENTION} {text}</p>",
            "visibility": visibility,
            "account": account,
        },
    }


def parse(item: dict[str, Any], nsfw: bool = False) -> Any:
    return parse_mention(item, bot_account_id=BOT_ID, nsfw_allowed=nsfw)


def test_draw_me_is_a_dream_keyed_by_the_status_id() -> None:
    invocation = parse(notification("could you draw me a fox --steps 4"))
    assert invocation.command == "dream"
    assert invocation.text == "/dream a fox --steps 4"
    assert invocation.event_id == "9001"
    assert invocation.user.user_id == "7"
    assert invocation.target.data == {
        "status_id": "9001",
        "account_id": "7",
        "acct": "alice@other.example",
        "visibility": "public",
    }
    assert invocation.received_at.year == 2026


def test_bare_command_words_are_commands() -> None:
    styles = parse(notification("styles anime"))
    assert (styles.command, styles.text) == ("styles", "anime")
    assert parse(notification("help")).command == "help"


def test_chatter_without_trigger_or_command_is_ignored() -> None:
    assert parse(notification("thanks, lovely picture!")) is None
    assert parse(notification("")) is None


def test_other_notifications_and_own_mentions_are_ignored() -> None:
    assert parse(notification("draw me a fox", kind="favourite")) is None
    assert parse(notification("draw me a fox", author=BOT_ID)) is None
    assert parse({"type": "mention", "id": "1"}) is None


def test_unknown_slash_command_reaches_the_core_by_its_name() -> None:
    invocation = parse(notification("/paint a fox"))
    assert (invocation.command, invocation.text) == ("paint", "a fox")


def test_direct_mentions_are_direct_messages_and_policy_follows_config() -> None:
    direct = parse(notification("draw me a fox", visibility="direct"), nsfw=True)
    assert direct.channel.is_dm
    assert direct.channel.nsfw_allowed
    assert not parse(notification("draw me a fox", visibility="private")).channel.is_dm


def test_login_is_public_unless_direct() -> None:
    assert is_public_login(parse(notification("/login KEY", visibility="unlisted")))
    assert is_public_login(parse(notification("/login KEY", visibility="private")))
    assert not is_public_login(parse(notification("/login KEY", visibility="direct")))


def test_ids_sort_as_numbers() -> None:
    assert sorted(["100", "99", "1000"], key=id_order) == ["99", "100", "1000"]
