"""The command grammar: legacy form, flags, inline TIs, longest-first names, structured input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.catalog import Catalog
from core.errors import UserError
from core.grammar import (
    EMPTY_VOCABULARY,
    Vocabulary,
    parse_dream,
    parse_line,
    parse_options,
    strip_trigger,
)
from core.model_reference import load_model_reference
from core.request import CommandRequest, LoraRef, RequestSpec, TIRef
from core.unset import UNSET
from styles.library import load_library


@pytest.fixture(scope="module")
def vocab(shared_styles_dir: str, shared_model_reference: str, tmp_path_factory: Any) -> Vocabulary:
    cache = Path(tmp_path_factory.mktemp("cache"))
    catalog = Catalog(
        library=load_library(shared_styles_dir, cache, 0),
        reference=load_model_reference(shared_model_reference, cache, 0),
    )
    return catalog.vocabulary


def dream(text: str, vocab: Vocabulary) -> RequestSpec:
    request = parse_line(text, vocab, bare_is_dream=True)
    assert request is not None
    assert request.spec is not None
    return request.spec


def user_error(text: str, vocab: Vocabulary) -> str:
    with pytest.raises(UserError) as caught:
        parse_line(text, vocab, bare_is_dream=True)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the legacy form -------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["draw me", "draw us", "draw for me", "draw for us", "Draw Me"])
def test_every_legacy_trigger_starts_a_dream(trigger: str, vocab: Vocabulary) -> None:
    request = parse_line(f"{trigger} a red fox", vocab)
    assert request == CommandRequest("dream", spec=RequestSpec(prompt="a red fox"))


def test_slash_dream_and_aliases_start_a_dream(vocab: Vocabulary) -> None:
    for text in ("/dream a red fox", "!dream a red fox", "/imagine a red fox", "/DREAM a red fox"):
        assert parse_line(text, vocab) == CommandRequest(
            "dream", spec=RequestSpec(prompt="a red fox")
        )


def test_a_bare_prompt_is_a_dream_only_when_the_caller_says_so(vocab: Vocabulary) -> None:
    assert parse_line("a red fox", vocab) is None
    assert parse_line("a red fox", vocab, bare_is_dream=True) == CommandRequest(
        "dream", spec=RequestSpec(prompt="a red fox")
    )


def test_trigger_can_be_found_further_in_for_mentions() -> None:
    assert strip_trigger("could you draw me a fox please", anywhere=True) == "a fox please"
    assert strip_trigger("could you draw me a fox") is None
    assert strip_trigger("drawing me") is None


@pytest.mark.parametrize(
    "name",
    [
        "a midsummer night's dream",
        "faetastic (flux)",
        "leaping–fire–cascade",
        "cascade+",
        "children's book illustration",
        "anime",
    ],
)
def test_legacy_style_takes_names_with_spaces_and_punctuation(name: str, vocab: Vocabulary) -> None:
    spec = dream(f"draw me a castle style: {name} ### blurry, text", vocab)
    assert spec == RequestSpec(prompt="a castle", style=name, negative="blurry, text")


def test_legacy_style_is_matched_longest_first(vocab: Vocabulary) -> None:
    # "flux" and "flux-portrait" both exist; the longer name wins.
    assert dream("a cat style: flux-portrait", vocab).style == "flux-portrait"
    assert dream("a cat style: flux", vocab).style == "flux"


def test_words_after_the_style_name_go_back_to_the_prompt(vocab: Vocabulary) -> None:
    spec = dream("draw me style: anime a fox in the snow ### blur", vocab)
    assert spec == RequestSpec(prompt="a fox in the snow", style="anime", negative="blur")


def test_legacy_style_ignores_case_and_a_trailing_comma(vocab: Vocabulary) -> None:
    spec = dream("a fox style: Anime, at dusk", vocab)
    assert (spec.style, spec.prompt) == ("anime", "a fox at dusk")


def test_negative_after_hashes_and_later_hashes_become_separators(vocab: Vocabulary) -> None:
    spec = dream("a fox ### dogs ### cats", vocab)
    assert (spec.prompt, spec.negative) == ("a fox", "dogs, cats")


def test_unknown_legacy_style_names_the_closest(vocab: Vocabulary) -> None:
    message = user_error("draw me a fox style: anmie", vocab)
    assert "anmie" in message
    assert "anime" in message


def test_style_given_twice_is_an_error(vocab: Vocabulary) -> None:
    assert "twice" in user_error("a fox style: anime --style flux", vocab)


# --- flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("--style anime", {"style": "anime"}),
        ("-s anime", {"style": "anime"}),
        ("--style sdxl-aspect-ratio", {"style": "sdxl-aspect-ratio"}),
        ("--no text, watermark", {"negative": "text, watermark"}),
        ("--negative text", {"negative": "text"}),
        ("--ar 16:9", {"aspect": (16, 9)}),
        ("--size 1024x768", {"size": (1024, 768)}),
        ("--size 1024X768", {"size": (1024, 768)}),
        ("--steps 20", {"steps": 20}),
        ("--cfg 6.5", {"cfg_scale": 6.5}),
        ("--seed 12345", {"seed": "12345"}),
        ("--seed banana", {"seed": "banana"}),
        ("--n 4", {"n": 4}),
        ("--amount 4", {"n": 4}),
        ("--model AlbedoBase XL (SDXL)", {"model": "AlbedoBase XL (SDXL)"}),
        ("--model albedobase xl (sdxl)", {"model": "AlbedoBase XL (SDXL)"}),
        ("-m Dreamshaper", {"model": "Dreamshaper"}),
        ("--sampler k_dpmpp_2m", {"sampler": "k_dpmpp_2m"}),
        ("--sampler Euler_A", {"sampler": "k_euler_a"}),
        ("--sampler lcm", {"sampler": "lcm"}),
        ("--lora 12345", {"loras": (LoraRef("12345"),)}),
        ("--lora 12345:0.6", {"loras": (LoraRef("12345", 0.6),)}),
        ("--lora v:67890:-1.5", {"loras": (LoraRef("67890", -1.5, is_version=True),)}),
        ("--lora add_detail", {"loras": (LoraRef("add_detail"),)}),
        ("--lora 1 --lora v:2", {"loras": (LoraRef("1"), LoraRef("2", is_version=True))}),
        ("--ti 4629", {"tis": (TIRef("4629", inject="prompt"),)}),
        ("--ti neg:4629:0.5", {"tis": (TIRef("4629", 0.5, "negprompt"),)}),
        ("--lcm", {"lcm": True}),
        ("--karras", {"karras": True}),
        ("--no-karras", {"karras": False}),
        ("--karras=off", {"karras": False}),
        ("--clip-skip 2", {"clip_skip": 2}),
        ("--clip_skip 2", {"clip_skip": 2}),
        ("--hires", {"hires_fix": True}),
        ("--hires-fix", {"hires_fix": True}),
        ("--no-hires", {"hires_fix": False}),
        ("--tiling", {"tiling": True}),
        ("--nsfw", {"nsfw": True}),
        ("--steps=20", {"steps": 20}),
        ("--Steps 20", {"steps": 20}),
        ("—steps 20", {"steps": 20}),
        ("–steps 20", {"steps": 20}),
        ("—ar 3:2", {"aspect": (3, 2)}),
        ("--no-text", {"negative": "text"}),
    ],
)
def test_each_flag_sets_its_field(flags: str, expected: dict[str, Any], vocab: Vocabulary) -> None:
    assert dream(f"a red fox {flags}", vocab) == RequestSpec(prompt="a red fox", **expected)


def test_flags_may_sit_anywhere_and_words_after_a_value_are_prompt(vocab: Vocabulary) -> None:
    spec = dream("--steps 20 a red fox --style anime in the snow --n 2", vocab)
    assert spec == RequestSpec(prompt="a red fox in the snow", steps=20, style="anime", n=2)


def test_text_values_stop_at_the_next_flag_or_hashes(vocab: Vocabulary) -> None:
    spec = dream("a fox --no dogs, cats --steps 9 ### birds", vocab)
    assert spec == RequestSpec(prompt="a fox", negative="birds, dogs, cats", steps=9)


def test_a_quoted_value_holds_spaces(vocab: Vocabulary) -> None:
    spec = dream('a fox --style "a midsummer night\'s dream" at night', vocab)
    assert (spec.style, spec.prompt) == ("a midsummer night's dream", "a fox at night")
    spec = dream("a fox --style “faetastic (flux)”", vocab)
    assert spec.style == "faetastic (flux)"


def test_unbalanced_quotes_are_just_text(vocab: Vocabulary) -> None:
    assert dream('a "fox', vocab).prompt == 'a "fox'
    assert dream('a fox --style "anime', vocab).style == "anime"
    assert "--seed needs a value" in user_error('a fox --seed "', vocab)
    assert dream("a fox' --steps 3 \"", vocab) == RequestSpec(prompt="a fox' \"", steps=3)


def test_an_em_dash_before_an_unknown_word_is_prose(vocab: Vocabulary) -> None:
    assert dream("a fox —sleeping", vocab).prompt == "a fox —sleeping"


def test_control_characters_are_dropped(vocab: Vocabulary) -> None:
    assert dream("a\x00fox\x07 --steps\x0b3", vocab) == RequestSpec(prompt="a fox", steps=3)


@pytest.mark.parametrize(
    ("text", "must_mention"),
    [
        ("a fox --stpes 20", ["--stpes", "--steps"]),
        ("a fox --colour red", ["--colour"]),
        ("a fox --style anmie", ["anmie", "anime"]),
        ("a fox --style zzzzqqq", ["zzzzqqq", "/styles"]),
        ("a fox --model albedo", ["albedo", "AlbedoBase XL (SDXL)"]),
        ("a fox --model Dreamshapr", ["Dreamshapr", "Dreamshaper"]),
        ("a fox --steps 0", ["--steps", "1 to 500"]),
        ("a fox --steps 501", ["1 to 500"]),
        ("a fox --steps ten", ["--steps", "'ten'"]),
        ("a fox --steps ١٢", ["--steps"]),
        ("a fox --cfg nan", ["--cfg"]),
        ("a fox --cfg 101", ["0 to 100"]),
        ("a fox --n 21", ["1 to 20"]),
        ("a fox --clip-skip 13", ["1 to 12"]),
        ("a fox --size 1024", ["WIDTHxHEIGHT"]),
        ("a fox --size 4096x1024", ["64 to 3072"]),
        ("a fox --ar 16", ["W:H"]),
        ("a fox --ar 0:1", ["above 0"]),
        ("a fox --ar 9:1", ["1:8"]),
        ("a fox --sampler euler_z", ["--sampler", "k_euler"]),
        ("a fox --lora 123:9", ["--lora", "-5 to 5"]),
        ("a fox --lora v:abc", ["version id"]),
        ("a fox --lora :0.5", ["--lora needs"]),
        ("a fox --lora 7:strong", ["NAME:STRENGTH"]),
        ("a fox --ti", ["--ti needs a value"]),
        ("a fox --steps", ["--steps needs a value"]),
        ("a fox --steps 3 --steps 4", ["--steps given twice"]),
        ("a fox --karras --no-karras", ["twice"]),
        ("a fox --karras=maybe", ["on or off"]),
        ("a fox (embedding:12:7)", ["-5 to 5"]),
        ("### only a negative", ["prompt is empty"]),
        ("--steps 20", ["prompt is empty"]),
        ("draw me style:", ["style: needs"]),
        ("/drem a fox", ["/drem", "/dream"]),
    ],
)
def test_bad_input_is_one_line_that_says_what_to_change(
    text: str, must_mention: list[str], vocab: Vocabulary
) -> None:
    message = user_error(text, vocab)
    for part in must_mention:
        assert part in message, message


# --- inline textual inversions ---------------------------------------------------------------


def test_inline_tis_are_listed_and_stay_in_the_prompt(vocab: Vocabulary) -> None:
    spec = dream("a fox embedding:12345, (embedding:777:0.5) ### embedding:4629", vocab)
    assert spec.prompt == "a fox embedding:12345, (embedding:777:0.5)"
    assert spec.tis == (TIRef("12345"), TIRef("777", 0.5), TIRef("4629"))


def test_inline_ti_wins_over_the_same_ti_flag(vocab: Vocabulary) -> None:
    """Injecting a TI the prompt already references would put it in twice."""
    spec = dream("a fox embedding:12345 --ti 12345:0.3 --ti 99", vocab)
    assert spec.tis == (TIRef("12345"), TIRef("99", inject="prompt"))


# --- without a vocabulary --------------------------------------------------------------------


def test_without_a_vocabulary_names_take_all_their_words() -> None:
    spec = parse_dream("a fox --style some style --steps 3", EMPTY_VOCABULARY)
    assert spec == RequestSpec(prompt="a fox", style="some style", steps=3)


# --- structured input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("a fox", {"prompt": "a fox"}),
        (
            "a fox ### dogs --style anime --steps 20 --cfg 6 --n 3",
            {
                "prompt": "a fox",
                "negative": "dogs",
                "style": "Anime",
                "steps": 20,
                "cfg": 6,
                "n": 3,
            },
        ),
        (
            "a fox --ar 2:3 --seed 42 --model AlbedoBase XL (SDXL) --sampler k_euler",
            {
                "prompt": "a fox",
                "ar": "2:3",
                "seed": 42,
                "model": "albedobase xl (sdxl)",
                "sampler": "euler",
            },
        ),
        (
            "a fox --size 1024x768 --lora 1:0.5 --lora v:2 --ti neg:3 --lcm --no-karras",
            {
                "prompt": "a fox",
                "size": [1024, 768],
                "lora": "1:0.5, v:2",
                "ti": ["neg:3"],
                "lcm": True,
                "karras": False,
            },
        ),
        (
            "a fox --clip-skip 2 --hires --tiling --nsfw",
            {"prompt": "a fox", "clip_skip": 2, "hires": True, "tiling": "yes", "nsfw": True},
        ),
        ("a fox --steps 20", {"prompt": "a fox --steps 20", "style": None}),
    ],
)
def test_structured_input_gives_the_same_request_as_text(
    text: str, options: dict[str, Any], vocab: Vocabulary
) -> None:
    assert parse_options("dream", options, vocab) == parse_line(text, vocab, bare_is_dream=True)


@pytest.mark.parametrize(
    ("options", "must_mention"),
    [
        ({"prompt": "a fox", "stpes": 3}, ["stpes", "steps"]),
        ({"prompt": "a fox", "steps": "many"}, ["steps"]),
        ({"prompt": "a fox", "steps": True}, ["steps"]),
        ({"prompt": "a fox", "cfg": float("inf")}, ["cfg"]),
        ({"prompt": "a fox", "style": "anime girl"}, ["anime girl", "anime"]),
        ({"prompt": "a fox --steps 3", "steps": 4}, ["twice"]),
        ({"steps": 4}, ["prompt"]),
    ],
)
def test_bad_structured_input_is_one_line(
    options: dict[str, Any], must_mention: list[str], vocab: Vocabulary
) -> None:
    with pytest.raises(UserError) as caught:
        parse_options("dream", options, vocab)
    message = str(caught.value)
    assert "\n" not in message
    for part in must_mention:
        assert part in message, message


# --- the other commands ----------------------------------------------------------------------


def test_other_commands_fill_their_arguments(vocab: Vocabulary) -> None:
    assert parse_line("/transfer alice#12 500", vocab) == CommandRequest(
        "transfer", args={"user": "alice#12", "amount": 500}
    )
    assert parse_line("help dream", vocab) == CommandRequest("help", args={"command": "dream"})
    assert parse_line("/help /imagine", vocab) == CommandRequest("help", args={"command": "dream"})
    assert parse_line("/styles pixel art", vocab) == CommandRequest(
        "styles", args={"query": "pixel art"}
    )
    assert parse_line("/style Faetastic (Flux)", vocab) == CommandRequest(
        "style", args={"name": "faetastic (flux)"}
    )
    assert parse_line("/kudos", vocab) == CommandRequest("kudos")
    assert parse_options("transfer", {"user": "bob#1", "amount": 5}, vocab) == CommandRequest(
        "transfer", args={"user": "bob#1", "amount": 5}
    )


@pytest.mark.parametrize(
    ("text", "must_mention"),
    [
        ("/transfer alice#12", ["needs amount"]),
        ("/transfer alice#12 lots", ["amount", "whole number"]),
        ("/kudos now please", ["unexpected"]),
        ("/help nope", ["nope"]),
        ("/style anmie", ["anime"]),
        ("/login", ["api_key"]),
    ],
)
def test_bad_arguments_of_other_commands_are_one_line(
    text: str, must_mention: list[str], vocab: Vocabulary
) -> None:
    message = user_error(text, vocab)
    for part in must_mention:
        assert part in message, message


def test_unset_means_not_given(vocab: Vocabulary) -> None:
    spec = dream("a fox", vocab)
    assert spec.steps is UNSET
    assert spec.negative is UNSET
    assert spec.karras is UNSET
