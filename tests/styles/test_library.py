"""Parsing the AI-Horde-Styles files: the full shared copy, bad entries, and our own fallback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.model_reference import (
    fallback_model_reference,
    lcm_lora,
    load_model_reference,
)
from styles.library import (
    Enhancement,
    StyleLibrary,
    StyleLora,
    StyleTI,
    fallback_library,
    load_library,
    parse_library,
)
from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES


@pytest.fixture(scope="module")
def shared() -> StyleLibrary:
    return load_library(str(SHARED_STYLES), Path("unused-cache"), 0)


def _raw(name: str) -> object:
    return json.loads((SHARED_STYLES / name).read_text(encoding="utf-8"))


def test_the_shared_copy_parses_whole(shared: StyleLibrary) -> None:
    assert shared.origin == f"folder:{SHARED_STYLES}"
    assert len(shared.styles) == 404
    assert len(shared.categories) == 43
    assert set(shared.enhancements) == {
        "stable diffusion 1",
        "stable diffusion 2",
        "stable_diffusion_xl",
    }


def test_every_field_of_every_style_survives_parsing(shared: StyleLibrary) -> None:
    raw = _raw("styles.json")
    assert isinstance(raw, dict)
    for name, entry in raw.items():
        style = shared.style(name)
        assert style is not None, name
        assert style.name == name
        assert style.prompt == entry["prompt"]
        for key in ("model", "steps", "width", "height", "sampler_name", "karras", "clip_skip"):
            assert getattr(style, key) == entry.get(key), (name, key)
        assert style.cfg_scale == entry.get("cfg_scale")
        assert style.hires_fix == entry.get("hires_fix")
        assert style.enhance == entry.get("enhance", False)
        assert [x.name for x in style.loras] == [x["name"] for x in entry.get("loras", [])]
        assert [x.name for x in style.tis] == [x["name"] for x in entry.get("tis", [])]
        assert style.extras == ()


def test_lora_weight_becomes_model_strength(shared: StyleLibrary) -> None:
    steampunk = shared.style("steampunk")
    glass = shared.style("glass pony")
    assert steampunk is not None
    assert glass is not None
    assert steampunk.loras == (
        StyleLora("1076692", model=0.6, is_version=True),
        StyleLora("375228", model=0.6, is_version=True),
    )
    assert glass.loras == (StyleLora("894554", model=0.5, clip=2.0, is_version=True),)


def test_lora_and_ti_details(shared: StyleLibrary) -> None:
    triggers = [
        s.name for s in shared.styles.values() if any(x.inject_trigger == "any" for x in s.loras)
    ]
    assert len(triggers) >= 11
    with_tis = [s for s in shared.styles.values() if s.tis]
    assert len(with_tis) == 2
    assert StyleTI("144327", inject_ti="negprompt") in with_tis[0].tis + with_tis[1].tis


def test_enhancement_block_for_sd1(shared: StyleLibrary) -> None:
    sd1 = shared.enhancements["stable diffusion 1"]
    assert [t.name for t in sd1.tis] == ["100191", "5224", "55700"]
    assert all(t.inject_ti == "negprompt" for t in sd1.tis)
    assert shared.enhancements["stable_diffusion_xl"] == Enhancement()


def test_lookup_ignores_case_and_names_cover_both_kinds(shared: StyleLibrary) -> None:
    assert shared.style("  SteamPunk ") is shared.style("steampunk")
    assert shared.is_category("FEATURED")
    names = shared.names()
    assert names == sorted(set(names))
    assert "animation" in names
    assert names.count("animation") == 1
    assert len(names) == 404 + 43 - 1  # 'animation' is both


def test_closest_suggests_near_names(shared: StyleLibrary) -> None:
    assert shared.closest("steampunc")[0] == "steampunk"
    assert "stylepunks" in shared.closest("stylepunk")
    assert shared.closest("qqqqqqqq") == []


def test_bad_entries_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    styles = {
        "good": {"prompt": "{p}, nice{np}", "tiling": True, "post_processing": ["GFPGAN"]},
        "no prompt": {"model": "stable_diffusion"},
        "lost prompt": {"prompt": "a fixed picture"},
        "wild lora": {"prompt": "{p}", "loras": [{"name": "1", "model": 9}]},
        "odd size": {"prompt": "{p}", "width": 500},
        "sdxl-styles dialect": {"prompt": "{p}", "cfg": 7},
        "Good": {"prompt": "{p} twice"},
        "int names": {"prompt": "{p}", "loras": [{"name": 123, "is_version": None}]},
    }
    categories = {
        "ok": ["good", "missing"],
        "empty": [],
        "not a list": "good",
        "mixed": ["good", 3],
    }
    enhancements = {"stable diffusion 1": {"tis": [{"name": "1", "id": 1}]}, "bad": {"steps": -1}}
    with caplog.at_level(logging.WARNING):
        library = parse_library(styles, categories, enhancements, "test")
    assert sorted(library.styles) == ["good", "int names", "sdxl-styles dialect"]
    good = library.style("good")
    assert good is not None
    assert good.extras == (("tiling", True), ("post_processing", ("GFPGAN",)))
    assert library.style("int names") is not None
    assert library.styles["int names"].loras == (StyleLora("123"),)
    assert library.categories == {"ok": ("good", "missing")}
    assert list(library.enhancements) == ["stable diffusion 1"]
    text = caplog.text
    for name in ("no prompt", "lost prompt", "wild lora", "odd size", "'cfg'", "Good", "empty"):
        assert name in text, name
    assert "'id'" not in text  # the TI's non-API id is expected and dropped quietly


def test_documents_of_the_wrong_shape_give_an_empty_library() -> None:
    library = parse_library([], "x", None, "test")
    assert (library.styles, library.categories, library.enhancements) == ({}, {}, {})


def test_library_is_immutable(shared: StyleLibrary) -> None:
    with pytest.raises(TypeError):
        shared.styles["new"] = shared.styles["steampunk"]  # type: ignore[index]


# --- our own fallback library ------------------------------------------------------------------


def test_fallback_library_is_complete_and_consistent() -> None:
    library = fallback_library()
    assert library.origin == "fallback"
    assert 10 <= len(library.styles) <= 20
    assert len(library.categories) >= 5
    assert library.is_category("featured")
    for members in library.categories.values():
        for member in members:
            assert member in library.styles or member in library.categories, member


def test_fallback_models_exist_in_both_model_references() -> None:
    upstream = load_model_reference(str(SHARED_MODEL_REFERENCE), Path("unused"), 0)
    ours = fallback_model_reference()
    for style in fallback_library().styles.values():
        assert style.model is not None
        mine, theirs = ours.get(style.model), upstream.get(style.model)
        assert mine is not None, style.model
        assert theirs is not None, style.model
        assert mine.baseline == theirs.baseline


def test_fallback_lcm_styles_use_the_lora_of_their_baseline() -> None:
    library = fallback_library()
    reference = fallback_model_reference()
    lcm_styles = [library.styles[n] for n in library.categories["lcm"]]
    assert "lcm-fast" in {s.name for s in lcm_styles}
    for style in lcm_styles:
        assert (style.steps, style.cfg_scale, style.sampler_name) == (4, 1.5, "lcm")
        info = reference.get(style.model or "")
        assert info is not None
        expected = lcm_lora(info.baseline)
        assert expected is not None
        assert [(x.name, x.is_version) for x in style.loras] == [expected]


def test_fallback_is_our_own_not_a_copy_of_upstream() -> None:
    raw = _raw("styles.json")
    assert isinstance(raw, dict)
    upstream_prompts = {entry["prompt"] for entry in raw.values()}
    for style in fallback_library().styles.values():
        assert style.name not in raw
        assert style.prompt not in upstream_prompts or style.prompt == "{p}{np}"
