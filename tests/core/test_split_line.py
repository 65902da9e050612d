"""Which command a mention or comment names, before the inbox parses it."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.grammar import split_line
from core.planner import dream_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("draw me a red fox --steps 4", ("dream", "a red fox --steps 4")),
        ("/dream a red fox", ("dream", "a red fox")),
        ("!styles anime", ("styles", "anime")),
        ("styles anime", ("styles", "anime")),
        ("help", ("help", "")),
        ("kudos", ("kudos", "")),
        ("hello there", None),
        ("could you draw me a cat", None),
    ],
)
def test_lines(text: str, expected: tuple[str, str] | None) -> None:
    assert split_line(text) == expected


def test_the_fediverse_trigger_may_come_after_other_words() -> None:
    assert split_line("could you draw me a cat", trigger_anywhere=True) == ("dream", "a cat")


def test_a_bare_line_is_a_prompt_where_the_caller_says_so() -> None:
    assert split_line("a lighthouse", bare_is_dream=True) == ("dream", "a lighthouse")


def test_an_unknown_slash_command_names_the_closest() -> None:
    with pytest.raises(UserError, match="/stlyes"):
        split_line("/stlyes")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("styles of rain over a city", "styles of rain over a city"),
        ("draw me styles of rain", "styles of rain"),
        ("/dream help wanted sign", "help wanted sign"),
        ("a fox", "a fox"),
        ("/nosuch fox", "/nosuch fox"),
    ],
)
def test_a_dream_keeps_prompts_that_open_with_a_command_word(text: str, expected: str) -> None:
    assert dream_text(text) == expected
