"""The model reference: the shared upstream copy, tolerant parsing, our fallback, baseline rules."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.model_reference import (
    Baseline,
    ModelReference,
    Requirements,
    default_size,
    fallback_model_reference,
    lcm_lora,
    load_model_reference,
    min_pixels,
    parse_model_reference,
)
from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES


@pytest.fixture(scope="module")
def shared() -> ModelReference:
    return load_model_reference(str(SHARED_MODEL_REFERENCE), Path("unused-cache"), 0)


def test_the_shared_copy_parses_whole(shared: ModelReference) -> None:
    assert shared.origin == f"file:{SHARED_MODEL_REFERENCE}"
    assert len(shared) == 161
    assert shared.baselines() == {
        "stable diffusion 1": 106,
        "stable_diffusion_xl": 49,
        "stable diffusion 2": 4,
        "stable_cascade": 1,
        "flux_1": 1,
    }
    assert set(shared.baselines()) == {b.value for b in Baseline}


def test_requirements_are_read(shared: ModelReference) -> None:
    pony = shared.get("Pony Diffusion XL")
    dreamshaper_xl = shared.get("DreamShaper XL")
    flux = shared.get("Flux.1-Schnell fp8 (Compact)")
    assert pony is not None
    assert dreamshaper_xl is not None
    assert flux is not None
    assert pony.requirements == Requirements(clip_skip=2)
    assert pony.baseline == Baseline.SDXL
    assert pony.nsfw
    assert dreamshaper_xl.requirements == Requirements(
        min_steps=3, max_steps=6, cfg_scale=2, samplers=("k_dpmpp_sde",), schedulers=("karras",)
    )
    assert (flux.requirements.min_cfg_scale, flux.requirements.max_cfg_scale) == (1, 4)
    assert flux.features_not_supported == ("hires_fix", "inpainting", "controlnet")
    with_requirements = [m for m in shared if m.requirements != Requirements()]
    assert len(with_requirements) == 29


def test_lookup_ignores_case_and_suggests(shared: ModelReference) -> None:
    assert shared.get("  albedobase xl (sdxl) ") is shared.get("AlbedoBase XL (SDXL)")
    assert "dreamshaper" in shared
    assert "no such model" not in shared
    assert shared.closest("Dreamshapr")[0] == "Dreamshaper"
    assert shared.names() == sorted(shared.names())


def test_every_shared_style_model_is_known_but_one(shared: ModelReference) -> None:
    styles = json.loads((SHARED_STYLES / "styles.json").read_text(encoding="utf-8"))
    missing = {s["model"] for s in styles.values() if s["model"] not in shared}
    assert missing == {"Qwen-Image_fp8"}  # upstream drift, recorded so a change is noticed


def test_bad_records_are_skipped_and_unknown_things_kept(caplog: pytest.LogCaptureFixture) -> None:
    data = {
        "ok": {"baseline": "stable diffusion 1", "requirements": None, "trigger": ["zz"]},
        "future": {"name": "future", "baseline": "qwen_image", "requirements": {"vibes": 3}},
        "no baseline": {"name": "no baseline"},
        "not an object": 7,
        "OK": {"baseline": "stable diffusion 1"},
    }
    with caplog.at_level(logging.WARNING):
        reference = parse_model_reference(data, "test")
    assert reference.names() == ["future", "ok"]
    ok, future = reference.get("ok"), reference.get("future")
    assert ok is not None
    assert future is not None
    assert ok.requirements == Requirements()
    assert ok.trigger == ("zz",)
    assert future.baseline == "qwen_image"
    for text in ("no baseline", "not an object", "'OK'", "vibes"):
        assert text in caplog.text, text
    assert len(parse_model_reference([1, 2], "test")) == 0


def test_missing_or_broken_sources_use_the_fallback(tmp_path: Path) -> None:
    broken = tmp_path / "stable_diffusion.json"
    broken.write_text("{nope")
    assert load_model_reference(str(broken), tmp_path, 0).origin == "fallback"
    assert load_model_reference(str(tmp_path / "missing.json"), tmp_path, 0).origin == "fallback"
    folder = load_model_reference(str(SHARED_MODEL_REFERENCE.parent), tmp_path, 0)
    assert folder.origin == f"folder:{SHARED_MODEL_REFERENCE.parent}"
    assert len(folder) == 161


def test_fallback_agrees_with_upstream_facts(shared: ModelReference) -> None:
    ours = fallback_model_reference()
    assert ours.origin == "fallback"
    assert len(ours) >= 8
    assert set(ours.baselines()) == {b.value for b in Baseline}
    for info in ours:
        theirs = shared.get(info.name)
        assert theirs is not None, info.name
        assert (info.baseline, info.requirements, info.nsfw) == (
            theirs.baseline,
            theirs.requirements,
            theirs.nsfw,
        ), info.name


@pytest.mark.parametrize(
    ("baseline", "size"),
    [
        (Baseline.SD1, (512, 512)),
        (Baseline.SD2, (768, 768)),
        (Baseline.SDXL, (1024, 1024)),
        (Baseline.CASCADE, (1024, 1024)),
        (Baseline.FLUX, (1024, 1024)),
        ("something new", (512, 512)),
    ],
)
def test_default_size_is_the_native_square(baseline: str, size: tuple[int, int]) -> None:
    assert default_size(baseline) == size


def test_min_pixels_refuses_small_sdxl_but_keeps_its_aspect_buckets() -> None:
    for baseline in (Baseline.SDXL, Baseline.CASCADE, Baseline.FLUX):
        floor = min_pixels(baseline)
        assert floor > 512 * 512
        for width, height in ((1024, 1024), (832, 1216), (1344, 768), (1024, 576), (768, 1024)):
            assert width * height >= floor, (baseline, width, height)
    assert min_pixels(Baseline.SD1) <= 512 * 512
    assert min_pixels(Baseline.SD1) > 256 * 256


def test_shared_large_model_styles_meet_the_floor_except_one(shared: ModelReference) -> None:
    styles = json.loads((SHARED_STYLES / "styles.json").read_text(encoding="utf-8"))
    below = [
        name
        for name, style in styles.items()
        if (info := shared.get(style["model"]))
        and style.get("width", 0) * style.get("height", 0) != 0
        and style["width"] * style["height"] < min_pixels(info.baseline)
    ]
    assert len(below) == 1  # one Flux style asks for 512x512; the payload builder lifts it


def test_lcm_lora_matches_the_baseline() -> None:
    assert lcm_lora(Baseline.SD1) == ("225222", True)
    assert lcm_lora(Baseline.SDXL) == ("268475", True)
    assert lcm_lora("stable diffusion 1") == lcm_lora(Baseline.SD1)
    for baseline in (Baseline.SD2, Baseline.CASCADE, Baseline.FLUX, "unknown"):
        assert lcm_lora(baseline) is None
