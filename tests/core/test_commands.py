"""The command table: complete, consistent with the request object, and the source of /help."""

from __future__ import annotations

import dataclasses

import pytest

from core.commands import COMMANDS, DREAM, Kind, Option, find_command, help_text
from core.grammar.flags import flag_table
from core.horde.wire import KNOWN_SAMPLERS, GenerationParams
from core.request import RequestSpec
from core.unset import UNSET

REQUIRED_COMMANDS = {
    "dream",
    "challenge",
    "styles",
    "style",
    "models",
    "kudos",
    "login",
    "logout",
    "transfer",
    "cancel",
    "reroll",
    "help",
    "worker",
}
REQUIRED_DREAM_FLAGS = {
    "--style",
    "-s",
    "--no",
    "--ar",
    "--size",
    "--steps",
    "--cfg",
    "--seed",
    "--n",
    "--model",
    "--sampler",
    "--lora",
    "--ti",
    "--lcm",
    "--karras",
    "--no-karras",
    "--clip-skip",
    "--hires",
    "--tiling",
    "--nsfw",
}


def test_table_has_every_command_of_the_issue() -> None:
    assert set(COMMANDS) == REQUIRED_COMMANDS


def test_dream_has_every_flag_of_the_issue() -> None:
    assert set(flag_table("dream")) >= REQUIRED_DREAM_FLAGS


def test_every_dream_option_fills_a_request_field() -> None:
    fields = {f.name for f in dataclasses.fields(RequestSpec)}
    for option in DREAM.options:
        assert option.target in fields, option.name


def test_every_request_field_has_an_option() -> None:
    targets = {o.target for o in DREAM.options}
    assert {f.name for f in dataclasses.fields(RequestSpec)} <= targets


@pytest.mark.parametrize("option", [o for c in COMMANDS.values() for o in c.options])
def test_defaults_and_ranges_are_well_formed(option: Option) -> None:
    if option.default is not UNSET and option.kind is Kind.FLAG:
        assert isinstance(option.default, bool)
    if option.kind in (Kind.INT, Kind.FLOAT) and not option.positional:
        assert option.minimum is not None
        assert option.maximum is not None
        if option.default is not UNSET:
            assert isinstance(option.default, int | float)
            assert option.minimum <= option.default <= option.maximum
    assert option.help


def test_dream_defaults_are_valid_horde_params() -> None:
    """The table's defaults are what the builder sends; the wire model must accept them."""
    params = GenerationParams(
        steps=DREAM.option("steps").default,
        cfg_scale=DREAM.option("cfg").default,
        n=DREAM.option("n").default,
        sampler_name=DREAM.option("sampler").default,
        clip_skip=DREAM.option("clip_skip").default,
    )
    assert params.steps == 30
    assert DREAM.option("sampler").choices == KNOWN_SAMPLERS


def test_no_flag_spelling_is_shared_by_two_options() -> None:
    for command in COMMANDS.values():
        seen: dict[str, str] = {}
        for option in command.options:
            for spelling in option.flags:
                assert spelling.casefold() not in seen, (spelling, option.name)
                seen[spelling.casefold()] = option.name


def test_find_command_takes_aliases_and_any_case() -> None:
    assert find_command("Imagine") is DREAM
    assert find_command("transferkudos") is COMMANDS["transfer"]
    assert find_command("nope") is None


def test_help_lists_every_command() -> None:
    text = help_text(None)
    for name in COMMANDS:
        assert f"/{name}" in text


def test_help_for_dream_is_derived_from_the_table() -> None:
    text = help_text("dream")
    for option in DREAM.options:
        if option.positional:
            assert f"<{option.name}>" in text
        else:
            assert "/".join(option.flags) in text
        assert option.help in text
    assert "1 to 500" in text  # steps' range, from the table
    assert "k_dpmpp_sde" in text  # the sampler choices


def test_help_for_an_unknown_command_raises_key_error() -> None:
    with pytest.raises(KeyError):
        help_text("nope")
