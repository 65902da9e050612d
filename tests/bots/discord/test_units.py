"""The pure parts: slash commands derived from the table, mentions, rendering, config."""

from __future__ import annotations

from types import SimpleNamespace

import discord
import pytest
from pydantic import ValidationError

from bots.discord.commands import MAX_OPTIONS, build_all, plain, slash_options
from bots.discord.config import DiscordConfig
from bots.discord.inbound import strip_mentions
from bots.discord.render import MARKER, render_reply
from core.commands import COMMANDS
from core.messages import Action, OutImage, Reply
from core.shaping import split_text


def test_every_table_command_and_option_is_a_slash_command() -> None:
    built = {command.name: command for command in build_all(lambda: None)}
    assert set(built) == set(COMMANDS)
    for name, command in COMMANDS.items():
        declared = [o.name for o in slash_options(command)]
        assert [p.name for p in built[name].parameters] == sorted(
            declared, key=lambda n: not command.option(n).required
        )
        assert len(declared) <= MAX_OPTIONS


def test_dream_ranges_come_from_the_table() -> None:
    dream = next(c for c in build_all(lambda: None) if c.name == "dream")
    steps = dream.get_parameter("steps")
    assert steps is not None
    assert (steps.min_value, steps.max_value) == (1, COMMANDS["dream"].option("steps").maximum)
    style = dream.get_parameter("style")
    assert style is not None
    assert style.autocomplete


def test_img2img_source_is_an_uploaded_file_handed_on_as_its_address() -> None:
    dream = next(c for c in build_all(lambda: None) if c.name == "dream")
    image = dream.get_parameter("image")
    assert image is not None
    assert image.type is discord.AppCommandOptionType.attachment
    url = "https://cdn.example/attachments/1/2/fox.png"
    data = {"id": 1, "size": 10, "filename": "fox.png", "url": url, "proxy_url": url}
    state = SimpleNamespace(http=None)  # an attachment only keeps its state for downloads
    assert plain(discord.Attachment(data=data, state=state)) == url  # type: ignore[arg-type]
    assert plain(0.4) == 0.4


def test_login_takes_no_visible_option() -> None:
    login = next(c for c in build_all(lambda: None) if c.name == "login")
    assert login.parameters == []


def test_strip_mentions_removes_only_the_bot() -> None:
    assert strip_mentions("<@42> draw me a cat <@7>", 42) == "draw me a cat <@7>"
    assert strip_mentions("<@!42>  help", 42) == "help"


def test_result_has_embed_marker_files_and_buttons() -> None:
    reply = Reply(
        "0e6f-0001-aaaa",
        text="“a cat”",
        images=(OutImage(b"x", alt_text="alt"),) * 12,
        metadata={"prompt": "a cat", "seed": "5"},
        actions=(Action.REROLL, Action.VARIATIONS, Action.DELETE),
    )
    posts = render_reply(reply, owner=9)
    assert len(posts) == 2
    assert len(posts[0].files()) == 10
    assert len(posts[1].files()) == 2
    assert posts[0].embed is not None
    assert posts[0].embed.footer.text == MARKER + "0e6f-0001-aaaa"
    view = posts[0].view()
    assert view is not None
    assert [getattr(i, "custom_id", "") for i in view.children] == [
        f"hb:{a}:0e6f-0001-aaaa:9" for a in ("reroll", "variations", "delete", "rate")
    ]
    assert posts[1].view() is None


def test_error_reply_has_no_buttons() -> None:
    posts = render_reply(Reply("g", error="no worker could finish this request"), owner=1)
    assert posts[0].view() is None
    assert posts[0].embed is not None
    assert "no worker" in (posts[0].embed.description or "")


def test_text_chunks_respect_the_limit() -> None:
    chunks = split_text("\n".join(["x" * 30] * 200), limit=100)
    assert all(len(c) <= 100 for c in chunks)
    assert len(chunks) > 1


def test_progress_interval_below_five_seconds_is_refused() -> None:
    with pytest.raises(ValidationError):
        DiscordConfig(progress_interval_seconds=2)
    with pytest.raises(ValidationError):
        DiscordConfig.model_validate({"token": "x"})
