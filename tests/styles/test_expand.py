"""Style expansion against the whole shared library: templates, categories, draws, enhance."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from styles.expand import (
    StylePick,
    UnknownStyle,
    expand_category,
    fill_template,
    merge_enhancement,
    pick_styles,
)
from styles.library import Enhancement, Style, StyleLibrary, StyleTI, load_library, parse_library
from tests.support.paths import SHARED_STYLES

ALTERNATION = re.compile(r"\{[^{}]*\|[^{}]*\}")


@pytest.fixture(scope="module")
def shared() -> StyleLibrary:
    return load_library(str(SHARED_STYLES), Path("unused-cache"), 0)


def _halves(text: str) -> tuple[str, str]:
    positive, _, negative = text.partition("###")
    return positive, negative


# --- fill_template -----------------------------------------------------------------------------


@pytest.mark.parametrize("negative", ["", "blurry, extra fingers"])
def test_every_shared_style_fills_cleanly(shared: StyleLibrary, negative: str) -> None:
    prompt = "a {red|blue} lighthouse at dusk"
    for style in shared.styles.values():
        text = fill_template(style.prompt, prompt, negative)
        positive, rest = _halves(text)
        assert prompt in positive, style.name
        assert "{p}" not in text, style.name
        assert "{np}" not in text, style.name
        for group in ALTERNATION.findall(style.prompt):
            assert group in text, (style.name, group)
        assert not text.startswith("###"), style.name
        assert not text.endswith("###"), style.name
        assert "###" not in rest, style.name
        assert not rest.startswith(","), style.name
        assert not rest.endswith(","), style.name
        assert ", ," not in text, style.name
        if negative:
            assert negative in rest, style.name
            assert not re.search(r"\w" + re.escape(negative), rest), f"glued: {style.name}"


def test_five_shared_styles_carry_alternations_that_survive(shared: StyleLibrary) -> None:
    with_groups = [s for s in shared.styles.values() if ALTERNATION.search(s.prompt)]
    assert len(with_groups) == 5
    babes = shared.style("babes")
    assert babes is not None
    assert fill_template(babes.prompt, "x", "").startswith("{VERISM STYLE|SAMDOESART STYLE|")


@pytest.mark.parametrize(
    ("template", "prompt", "negative", "expected"),
    [
        ("{p}{np}", "a cat", "", "a cat"),
        ("{p}{np}", "a cat", "dog", "a cat###dog"),
        ("{p}, oil{np}", "a cat", "dog", "a cat, oil###dog"),
        ("{p}###{np}, lowres", "a cat", "", "a cat###lowres"),
        ("{p}###{np}, lowres", "a cat", "dog", "a cat###dog, lowres"),
        ("{p}###bad, {np}", "a cat", "", "a cat###bad"),
        ("{p}###{np}", "a cat", "", "a cat"),
        ("{p}###ugly{np}", "a cat", "dog", "a cat###ugly, dog"),
        ("{p}###(ugly){np}", "a cat", "dog", "a cat###(ugly), dog"),
        ("{p}###bad {np}", "a cat", "dog", "a cat###bad dog"),
        ("{p}###a###b{np}", "a cat", "", "a cat###a, b"),
        ("{p}##{np}", "a cat", "dog", "a cat###dog"),
        ("{p}##{np}", "a cat", "", "a cat"),
        ("{p} x####{np}", "a cat", "dog", "a cat x###dog"),
        ("crungus, {p}, by miura", "a cat", "dog", "crungus, a cat, by miura###dog"),
        ("crungus, {p}###gore", "a cat", "dog", "crungus, a cat###gore, dog"),
        ("{p}{np}", "say {np} and {p}", "", "say {np} and {p}"),
        ("{p}{np}", "a {b|c}", "{d|e}", "a {b|c}###{d|e}"),
        ("{p}, {x}{np}", "a cat", "", "a cat, {x}"),
        ("{p}{np}", "a cat ### dog", "", "a cat###dog"),
        ("{p}{np}", "a cat ### dog", "rat", "a cat###dog, rat"),
    ],
)
def test_fill_template_cases(template: str, prompt: str, negative: str, expected: str) -> None:
    assert fill_template(template, prompt, negative) == expected


_TEXT = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N", "Zs"), whitelist_characters="{}|()-:.'"),
    max_size=40,
).map(str.strip)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), prompt=_TEXT.filter(bool), negative=_TEXT)
def test_fill_template_keeps_what_the_user_wrote(
    shared: StyleLibrary, data: st.DataObject, prompt: str, negative: str
) -> None:
    style = data.draw(st.sampled_from(sorted(shared.styles.values(), key=lambda s: s.name)))
    positive, rest = _halves(fill_template(style.prompt, prompt, negative))
    assert prompt in positive
    if negative:
        assert negative in rest
    for group in ALTERNATION.findall(style.prompt):
        assert group in positive + rest


# --- categories --------------------------------------------------------------------------------


def test_all_43_categories_expand_to_distinct_styles(shared: StyleLibrary) -> None:
    assert len(shared.categories) == 43
    for name in shared.categories:
        styles = expand_category(shared, name)
        assert styles, name
        assert len(styles) == len(set(styles)), name
        assert all(s in shared.styles for s in styles), name


def test_stylepunks_has_51_styles(shared: StyleLibrary) -> None:
    assert len(expand_category(shared, "stylepunks")) == 51


def test_featured_lists_flux_once_although_reached_twice(shared: StyleLibrary) -> None:
    featured = expand_category(shared, "featured")
    assert shared.categories["featured"][0] == "flux"
    assert "flux" in shared.categories["flux-aspect-ratio"]
    assert featured.count("flux") == 1
    assert featured[0] == "flux"
    assert set(expand_category(shared, "flux-aspect-ratio")) <= set(featured)


def test_animation_is_a_category_inside_lists_and_a_style_at_the_top(
    shared: StyleLibrary,
) -> None:
    artstyles = expand_category(shared, "artstyles")
    assert "toonyou" in artstyles
    assert "western animation" in artstyles
    assert "animation" not in artstyles
    [pick] = pick_styles(shared, "Animation", 4, random.Random(0))
    assert pick == StylePick(shared.styles["animation"], None)
    assert expand_category(shared, "animation") == ["toonyou", "western animation"]


def test_nested_categories_expand_recursively(shared: StyleLibrary) -> None:
    summer = expand_category(shared, "summer")
    assert set(expand_category(shared, "summer 2023")) <= set(summer)
    assert set(expand_category(shared, "summer 2024")) <= set(summer)


def test_a_cycle_is_cut_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    library = parse_library(
        {"s1": {"prompt": "{p}"}, "s2": {"prompt": "{p}"}, "s3": {"prompt": "{p}"}},
        {"a": ["b", "s1"], "b": ["c", "s2"], "c": ["a", "s3", "s1"], "self": ["self", "s1"]},
        {},
        "test",
    )
    with caplog.at_level(logging.WARNING):
        assert expand_category(library, "a") == ["s3", "s1", "s2"]
        assert expand_category(library, "self") == ["s1"]
    assert "a -> b -> c -> a" in caplog.text
    assert "self -> self" in caplog.text


def test_unknown_category_names_close_matches(shared: StyleLibrary) -> None:
    with pytest.raises(UnknownStyle) as caught:
        expand_category(shared, "featurd")
    assert caught.value.closest[0] == "featured"
    assert "featurd" in str(caught.value)
    assert "featured" in str(caught.value)


# --- drawing -----------------------------------------------------------------------------------


def test_a_style_name_gives_that_style(shared: StyleLibrary) -> None:
    assert pick_styles(shared, "SteamPunk", 4, random.Random(1)) == [
        StylePick(shared.styles["steampunk"], None)
    ]


def test_a_category_draws_k_distinct_styles_reproducibly(shared: StyleLibrary) -> None:
    first = pick_styles(shared, "stylepunks", 4, random.Random(42))
    again = pick_styles(shared, "stylepunks", 4, random.Random(42))
    assert first == again
    assert len({p.style.name for p in first}) == 4
    assert all(p.category == "stylepunks" for p in first)
    draws = {
        tuple(p.style.name for p in pick_styles(shared, "stylepunks", 4, random.Random(seed)))
        for seed in range(10)
    }
    assert len(draws) > 1  # the seed matters


def test_k_larger_than_the_category_gives_all_of_it(shared: StyleLibrary) -> None:
    small = expand_category(shared, "birthday 2023")
    picks = pick_styles(shared, "birthday 2023", 50, random.Random(3))
    assert sorted(p.style.name for p in picks) == sorted(small)


def test_usable_filters_the_pool_and_yields_when_it_would_empty_it(shared: StyleLibrary) -> None:
    def dreamshaper_only(style: Style) -> bool:
        return style.model == "Dreamshaper"

    picks = pick_styles(shared, "stylepunks", 4, random.Random(5), usable=dreamshaper_only)
    assert len(picks) == 4
    assert all(p.style.model == "Dreamshaper" for p in picks)
    nothing = pick_styles(shared, "featured", 2, random.Random(5), usable=lambda s: False)
    assert len(nothing) == 2


def test_unknown_and_empty_names_raise(shared: StyleLibrary) -> None:
    with pytest.raises(UnknownStyle) as caught:
        pick_styles(shared, "stylepunk", 4, random.Random(0))
    assert "stylepunks" in caught.value.closest
    hollow = parse_library({}, {"ghosts": ["nobody"]}, {}, "test")
    with pytest.raises(UnknownStyle) as empty:
        pick_styles(hollow, "ghosts", 1, random.Random(0))
    assert empty.value.empty_category
    with pytest.raises(ValueError, match="k must be"):
        pick_styles(shared, "featured", 0, random.Random(0))


# --- enhance -----------------------------------------------------------------------------------


def test_enhance_appends_the_baseline_block_once(shared: StyleLibrary) -> None:
    punk = shared.style("absinthepunk")
    assert punk is not None
    assert punk.enhance
    block = shared.enhancements["stable diffusion 1"]
    merged = merge_enhancement(punk, block)
    assert merged.tis == punk.tis + block.tis
    assert merged.loras == punk.loras
    assert not merged.enhance
    assert merge_enhancement(merged, block).tis == merged.tis


def test_enhancement_scalars_overwrite_and_known_tis_are_not_doubled() -> None:
    style = Style(name="s", prompt="{p}", steps=30, cfg_scale=7, tis=(StyleTI("5224"),))
    enhancement = Enhancement(tis=(StyleTI("5224"), StyleTI("9")), steps=20)
    merged = merge_enhancement(style, enhancement)
    assert merged == replace(style, steps=20, tis=(StyleTI("5224"), StyleTI("9")))
