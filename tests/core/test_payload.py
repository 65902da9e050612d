"""The horde body a request becomes: precedence, model corrections, LCM, limits and policy."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from core.catalog import Catalog
from core.errors import UserError
from core.horde.wire import GenerationInput
from core.model_reference import Baseline, load_model_reference, min_pixels
from core.payload import (
    BuildSettings,
    BuiltRequest,
    build_requests,
    raise_to_area,
    size_for_ratio,
    split_count,
)
from core.policy import NSFW_ALLOWED, SFW, ChannelPolicy
from core.request import LoraRef, RequestSpec, TIRef
from styles.library import load_library


@pytest.fixture(scope="module")
def catalog(shared_styles_dir: str, shared_model_reference: str, tmp_path_factory: Any) -> Catalog:
    cache = Path(tmp_path_factory.mktemp("cache"))
    return Catalog(
        library=load_library(shared_styles_dir, cache, 0),
        reference=load_model_reference(shared_model_reference, cache, 0),
    )


def build(
    catalog: Catalog,
    text: str,
    *,
    policy: ChannelPolicy = SFW,
    seed: int = 0,
    settings: BuildSettings | None = None,
) -> list[BuiltRequest]:
    return catalog.dream(
        text, policy=policy, rng=random.Random(seed), settings=settings or BuildSettings()
    )


def one(catalog: Catalog, text: str, **kwargs: Any) -> BuiltRequest:
    built = build(catalog, text, **kwargs)
    assert len(built) == 1
    return built[0]


def wire(catalog: Catalog, text: str, **kwargs: Any) -> dict[str, Any]:
    return one(catalog, text, **kwargs).body.to_wire()


def error(catalog: Catalog, text: str, **kwargs: Any) -> str:
    with pytest.raises(UserError) as caught:
        build(catalog, text, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the exact body --------------------------------------------------------------------------


def test_a_plain_request_gives_this_exact_body(catalog: Catalog) -> None:
    body = wire(catalog, "a red fox ### blurry --model Dreamshaper --steps 20 --seed 7")
    assert body == {
        "prompt": "a red fox###blurry",
        "params": {
            "sampler_name": "k_euler_a",
            "cfg_scale": 7.5,
            "height": 512,
            "width": 512,
            "seed": "7",
            "post_processing": [],
            "karras": True,
            "tiling": False,
            "hires_fix": False,
            "clip_skip": 1,
            "loras": [],
            "tis": [],
            "transparent": False,
            "steps": 20,
            "n": 1,
        },
        "nsfw": False,
        "censor_nsfw": True,
        "trusted_workers": False,
        "validated_backends": False,
        "slow_workers": True,
        "extra_slow_workers": False,
        "workers": [],
        "worker_blacklist": False,
        "models": ["Dreamshaper"],
        "source_processing": "img2img",
        "r2": True,
        "shared": False,
        "replacement_filter": True,
        "dry_run": False,
        "disable_batching": False,
        "allow_downgrade": False,
    }


def test_fields_whose_server_default_differs_are_always_sent(catalog: Catalog) -> None:
    body = wire(catalog, "a red fox")
    for key in ("nsfw", "censor_nsfw", "models", "r2"):
        assert key in body
    for key in ("cfg_scale", "karras"):
        assert key in body["params"]
    GenerationInput.model_validate(body)


def test_seed_is_sent_as_a_string(catalog: Catalog) -> None:
    assert wire(catalog, "a fox --seed 12345")["params"]["seed"] == "12345"
    assert wire(catalog, "a fox --seed banana")["params"]["seed"] == "banana"
    assert "seed" not in wire(catalog, "a fox")["params"]


def test_without_style_or_model_the_default_model_is_used(catalog: Catalog) -> None:
    body = wire(catalog, "a fox")
    assert body["models"] == ["AlbedoBase XL (SDXL)"]
    assert (body["params"]["width"], body["params"]["height"]) == (1024, 1024)
    other = BuildSettings(default_model="Dreamshaper")
    assert wire(catalog, "a fox", settings=other)["models"] == ["Dreamshaper"]


def test_a_default_style_applies_when_the_user_names_none(catalog: Catalog) -> None:
    built = one(catalog, "a fox", settings=BuildSettings(default_style="pony"))
    assert built.style == "pony"
    assert built.body.models == ["Pony Diffusion XL"]
    assert (
        one(catalog, "a fox --style steampunk", settings=BuildSettings(default_style="pony")).style
        == "steampunk"
    )


# --- precedence: user > style > model requirement > default ----------------------------------


def test_table_defaults_apply_when_nobody_decides(catalog: Catalog) -> None:
    params = wire(catalog, "a fox --model Dreamshaper")["params"]
    assert (params["steps"], params["cfg_scale"], params["sampler_name"]) == (30, 7.5, "k_euler_a")
    assert (params["karras"], params["clip_skip"], params["hires_fix"]) == (True, 1, False)


def test_model_requirements_fill_what_nobody_set(catalog: Catalog) -> None:
    built = one(catalog, "a fox --model DreamShaper XL")
    params = built.body.params
    assert (params.steps, params.cfg_scale, params.sampler_name, params.karras) == (
        6,
        2.0,
        "k_dpmpp_sde",
        True,
    )
    assert built.warnings == ()


def test_pony_diffusion_xl_gets_clip_skip_2(catalog: Catalog) -> None:
    assert wire(catalog, "a fox --model Pony Diffusion XL")["params"]["clip_skip"] == 2


def test_flux_requirements_bound_the_defaults(catalog: Catalog) -> None:
    params = wire(catalog, "a fox --model Flux.1-Schnell fp8 (Compact)")["params"]
    assert (params["steps"], params["cfg_scale"], params["sampler_name"]) == (8, 4.0, "k_euler")


def test_the_style_beats_the_model_requirement(catalog: Catalog) -> None:
    # steampunk runs DreamShaper XL with its own steps 4 and cfg 2.
    params = wire(catalog, "a fox --style steampunk")["params"]
    assert (params["steps"], params["cfg_scale"]) == (4, 2.0)


def test_the_user_beats_the_style_and_is_warned_outside_the_model_spec(catalog: Catalog) -> None:
    built = one(catalog, "a fox --style steampunk --steps 30 --cfg 7 --sampler k_euler --no-karras")
    params = built.body.params
    assert (params.steps, params.cfg_scale, params.sampler_name, params.karras) == (
        30,
        7.0,
        "k_euler",
        False,
    )
    joined = " | ".join(built.warnings)
    assert "at most 6 steps" in joined
    assert "CFG 2" in joined
    assert "k_dpmpp_sde" in joined
    assert "karras" in joined


def test_user_clip_skip_outside_the_model_spec_is_kept_with_a_warning(catalog: Catalog) -> None:
    built = one(catalog, "a fox --model Pony Diffusion XL --clip-skip 1")
    assert built.body.params.clip_skip == 1
    assert any("clip skip 2" in w for w in built.warnings)


def test_style_settings_reach_the_body(catalog: Catalog) -> None:
    built = one(catalog, "a fox ### dogs --style pony")
    body = built.body
    assert body.prompt.startswith("score_9, score_8_up")
    assert body.prompt.endswith("a fox###dogs")
    assert (body.params.clip_skip, body.params.cfg_scale, body.params.steps) == (2, 5.0, 30)


# --- sizes -----------------------------------------------------------------------------------


def test_sdxl_defaults_to_its_native_square_and_small_sizes_are_raised(catalog: Catalog) -> None:
    assert wire(catalog, "a fox --model AlbedoBase XL (SDXL)")["params"]["width"] == 1024
    built = one(catalog, "a fox --model AlbedoBase XL (SDXL) --size 512x256")
    params = built.body.params
    assert params.width * params.height >= min_pixels(Baseline.SDXL)
    assert params.width == 2 * params.height  # the aspect is kept
    assert any("raised" in w for w in built.warnings)


def test_sizes_snap_to_multiples_of_64(catalog: Catalog) -> None:
    built = one(catalog, "a fox --model Dreamshaper --size 1000x700")
    assert (built.body.params.width, built.body.params.height) == (1024, 704)
    assert any("1000x700" in w for w in built.warnings)


@pytest.mark.parametrize(
    ("model", "budget"),
    [("Dreamshaper", 512 * 512), ("AlbedoBase XL (SDXL)", 1024 * 1024)],
)
@pytest.mark.parametrize("ratio", [(16, 9), (2, 3), (1, 1), (21, 9), (1, 8)])
def test_aspect_ratio_respects_the_pixel_budget(
    catalog: Catalog, model: str, budget: int, ratio: tuple[int, int]
) -> None:
    params = wire(catalog, f"a fox --model {model} --ar {ratio[0]}:{ratio[1]}")["params"]
    width, height = params["width"], params["height"]
    assert width % 64 == 0
    assert height % 64 == 0
    assert 0.75 * budget <= width * height <= 1.3 * budget
    assert abs(width / height - ratio[0] / ratio[1]) / (ratio[0] / ratio[1]) < 0.2


def test_size_and_ratio_together_are_an_error(catalog: Catalog) -> None:
    assert "--size and --ar" in error(catalog, "a fox --size 512x512 --ar 1:1")


def test_size_helpers() -> None:
    assert size_for_ratio((16, 9), 1024 * 1024) == (1344, 768)
    assert size_for_ratio((1, 1), 512 * 512) == (512, 512)
    assert raise_to_area(512, 512, 524288) == (768, 768)
    assert raise_to_area(1024, 1024, 524288) == (1024, 1024)
    assert split_count(7, 4) == [2, 2, 2, 1]
    assert split_count(4, 4) == [1, 1, 1, 1]


# --- LCM -------------------------------------------------------------------------------------


def test_lcm_on_sd15_uses_the_sd15_lora_and_fast_settings(catalog: Catalog) -> None:
    built = one(catalog, "a fox --model Dreamshaper --lcm")
    params = built.body.params
    assert [(x.name, x.is_version) for x in params.loras] == [("225222", True)]
    assert (params.sampler_name, params.steps, params.cfg_scale) == ("lcm", 4, 1.5)
    assert built.warnings == ()


def test_lcm_on_sdxl_uses_the_sdxl_lora_after_the_users(catalog: Catalog) -> None:
    params = one(catalog, "a fox --model AlbedoBase XL (SDXL) --lcm --lora 111").body.params
    assert [(x.name, x.is_version) for x in params.loras] == [("111", False), ("268475", True)]
    assert params.sampler_name == "lcm"


def test_lcm_replaces_a_styles_steps_and_keeps_the_users_within_range(catalog: Catalog) -> None:
    params = one(catalog, "a fox --style pony --lcm").body.params
    assert (params.steps, params.cfg_scale) == (4, 1.5)
    params = one(catalog, "a fox --model Dreamshaper --lcm --steps 6 --cfg 1.2").body.params
    assert (params.steps, params.cfg_scale) == (6, 1.2)


def test_lcm_clamps_user_values_outside_its_range_with_warnings(catalog: Catalog) -> None:
    built = one(catalog, "a fox --model Dreamshaper --lcm --steps 30 --cfg 7 --sampler k_euler")
    params = built.body.params
    assert (params.steps, params.cfg_scale, params.sampler_name) == (8, 2.0, "lcm")
    assert len(built.warnings) == 3


def test_lcm_on_a_model_without_an_lcm_lora_is_an_error(catalog: Catalog) -> None:
    message = error(catalog, "a fox --model Flux.1-Schnell fp8 (Compact) --lcm")
    assert "--lcm" in message
    assert "flux_1" in message


# --- LoRAs and TIs ---------------------------------------------------------------------------


def test_user_loras_come_first_then_the_styles_each_once(catalog: Catalog) -> None:
    params = one(catalog, "a fox --style steampunk --lora 5 --lora v:1076692:0.3").body.params
    assert [(x.name, x.is_version, x.model) for x in params.loras] == [
        ("5", False, 1.0),
        ("1076692", True, 0.3),
        ("375228", True, 0.6),
    ]


def test_too_many_loras_say_how_many_to_drop(catalog: Catalog) -> None:
    message = error(catalog, "a fox " + " ".join(f"--lora {i}" for i in range(1, 8)))
    assert "7 LoRAs" in message
    assert "drop 2" in message
    # bdcolordd already has 5 LoRAs: one more of the user's is one too many.
    assert "drop 1" in error(catalog, "a fox --style bdcolordd --lora 1")


def test_tis_merge_user_first_with_enhancements_and_dedupe(catalog: Catalog) -> None:
    # glitchart is an SD 1.5 style with enhance: true, which adds three negative TIs.
    params = one(catalog, "a fox embedding:42 --ti neg:5224:0.5 --style glitchart").body.params
    assert [(x.name, x.inject_ti, x.strength) for x in params.tis] == [
        ("42", None, 1.0),
        ("5224", "negprompt", 0.5),
        ("100191", "negprompt", 1.0),
        ("55700", "negprompt", 1.0),
    ]


def test_too_many_tis_say_how_many_to_drop(catalog: Catalog) -> None:
    text = "a fox " + " ".join(f"embedding:{i}" for i in range(1, 23))
    message = error(catalog, text + " --model Dreamshaper")
    assert "22 textual inversions" in message
    assert "drop 2" in message


# --- NSFW policy -----------------------------------------------------------------------------


def test_sfw_channel_never_sends_nsfw(catalog: Catalog) -> None:
    built = one(catalog, "a fox --nsfw", policy=SFW)
    assert (built.body.nsfw, built.body.censor_nsfw) == (False, True)
    assert any("--nsfw ignored" in w for w in built.warnings)


def test_nsfw_channel_defaults_to_safe_and_opens_on_request(catalog: Catalog) -> None:
    plain = one(catalog, "a fox", policy=NSFW_ALLOWED).body
    assert (plain.nsfw, plain.censor_nsfw) == (False, True)
    asked = one(catalog, "a fox --nsfw", policy=NSFW_ALLOWED)
    assert (asked.body.nsfw, asked.body.censor_nsfw) == (True, False)
    assert asked.warnings == ()


# --- categories ------------------------------------------------------------------------------


def test_a_category_with_n_4_draws_up_to_4_distinct_styles(catalog: Catalog) -> None:
    built = build(catalog, "a fox --style featured --n 4", seed=3)
    assert len(built) == 4
    assert len({b.style for b in built}) == 4
    assert {b.category for b in built} == {"featured"}
    assert sum(b.body.params.n for b in built) == 4


def test_category_draws_are_repeatable_with_a_seeded_rng(catalog: Catalog) -> None:
    first = [b.style for b in build(catalog, "a fox --style featured --n 3", seed=11)]
    again = [b.style for b in build(catalog, "a fox --style featured --n 3", seed=11)]
    assert first == again


def test_n_is_split_over_the_drawn_styles(catalog: Catalog) -> None:
    built = build(catalog, "a fox --style featured --n 7")
    assert [b.body.params.n for b in built] == [2, 2, 2, 1]
    assert len(build(catalog, "a fox --style featured")) == 1
    limited = build(catalog, "a fox --style featured --n 6", settings=BuildSettings(max_styles=2))
    assert [b.body.params.n for b in limited] == [3, 3]


def test_a_usable_filter_narrows_the_draw(catalog: Catalog) -> None:
    built = build_requests(
        RequestSpec(prompt="a fox", style="featured", n=4),
        library=catalog.library,
        reference=catalog.reference,
        policy=SFW,
        rng=random.Random(0),
        usable=lambda style: style.name == "flux-small",
    )
    assert [b.style for b in built] == ["flux-small"]


# --- models and styles the reference or the library does not know -------------------------


def test_unknown_model_names_the_closest(catalog: Catalog) -> None:
    with pytest.raises(UserError) as caught:
        catalog.build(
            RequestSpec(prompt="a fox", model="albedobase"), policy=SFW, rng=random.Random()
        )
    assert "AlbedoBase XL (SDXL)" in str(caught.value)


def test_unknown_style_names_the_closest(catalog: Catalog) -> None:
    with pytest.raises(UserError) as caught:
        catalog.build(
            RequestSpec(prompt="a fox", style="steam punk"), policy=SFW, rng=random.Random()
        )
    assert "steampunk" in str(caught.value)


def test_a_style_model_missing_from_the_reference_warns_but_builds(catalog: Catalog) -> None:
    built = one(catalog, "a fox --style qwen")
    assert built.body.models == ["Qwen-Image_fp8"]
    assert any("Qwen-Image_fp8" in w for w in built.warnings)


# --- other corrections -----------------------------------------------------------------------


def test_hires_fix_is_dropped_where_the_horde_refuses_it(catalog: Catalog) -> None:
    built = one(catalog, "a fox --model Flux.1-Schnell fp8 (Compact) --hires")
    assert built.body.params.hires_fix is False
    assert any("hires" in w for w in built.warnings)
    assert wire(catalog, "a fox --model Dreamshaper --hires")["params"]["hires_fix"] is True


def test_cfg_is_rounded_to_two_decimals(catalog: Catalog) -> None:
    built = catalog.build(
        RequestSpec(prompt="a fox", model="Dreamshaper", cfg_scale=6.557),
        policy=SFW,
        rng=random.Random(),
    )[0]
    assert built.body.params.cfg_scale == 6.56
    assert any("rounded" in w for w in built.warnings)


def test_structured_and_text_requests_build_the_same_body(catalog: Catalog) -> None:
    text = catalog.parse("a fox ### dogs --style anime --steps 12 --lora 7:0.5", bare_is_dream=True)
    form = catalog.parse_options(
        "dream",
        {"prompt": "a fox", "negative": "dogs", "style": "anime", "steps": 12, "lora": "7:0.5"},
    )
    assert text is not None
    assert text.spec is not None
    assert form.spec is not None
    rng = random.Random
    assert [b.body for b in catalog.build(text.spec, policy=SFW, rng=rng(1))] == [
        b.body for b in catalog.build(form.spec, policy=SFW, rng=rng(1))
    ]


def test_request_values_types(catalog: Catalog) -> None:
    spec = RequestSpec(
        prompt="a fox",
        loras=(LoraRef("9", 0.5),),
        tis=(TIRef("8", inject="prompt"),),
        model="Dreamshaper",
    )
    body = catalog.build(spec, policy=SFW, rng=random.Random())[0].body
    assert body.params.loras[0].model == 0.5
    assert body.params.tis[0].inject_ti == "prompt"


# --- img2img ---------------------------------------------------------------------------------


def test_an_image_address_becomes_an_img2img_source_with_its_denoise(catalog: Catalog) -> None:
    body = wire(catalog, "a fox --image https://example.org/fox.png --denoise 0.4")
    assert body["source_image"] == "https://example.org/fox.png"
    assert body["source_processing"] == "img2img"
    assert body["params"]["denoising_strength"] == 0.4


def test_without_an_image_there_is_no_source_and_denoise_is_noted(catalog: Catalog) -> None:
    built = one(catalog, "a fox --denoise 0.4")
    body = built.body.to_wire()
    assert "source_image" not in body
    assert "denoising_strength" not in body["params"]
    assert any("--denoise ignored" in note for note in built.warnings)


def test_an_image_that_is_not_an_address_is_one_clear_line(catalog: Catalog) -> None:
    message = error(catalog, "a fox --image fox.png")
    assert "--image needs an http(s) address" in message
    assert "denoise" in error(catalog, "a fox --image https://example.org/a.png --denoise 2")
