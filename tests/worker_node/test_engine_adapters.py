"""LoRAs and TIs: they change the job they are for, and no later job ever sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.horde.wire import GenMetadata, LoraSpec, TISpec
from tests.worker_node.conftest import TINY_SD, TINY_SDXL, MakeJob, max_diff
from worker_node.engine import Engine, JobAssets

pytestmark = [
    # diffusers 0.42 schedulers hand torch tensors to numpy, and numpy 2.4 deprecates the old
    # signatures of torch's __array__/__array_wrap__. Not ours to change; harmless.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

# Unloading restores the weights exactly; this leaves room for float rounding only.
TOLERANCE = 2


def lora(path: Path, name: str = "12345", **fields: float) -> JobAssets:
    return JobAssets(loras=((LoraSpec(name=name, **fields), path),))


def base_image(engine: Engine, make_job: MakeJob, model: str = TINY_SD, **payload: object) -> bytes:
    return engine.run(make_job(model=model, **payload)).images[0].webp


def tokenizer_size(engine: Engine, model: str = TINY_SD) -> int:
    loaded = engine._cache.get(engine._specs[model])
    return len(loaded.txt2img.tokenizer)


# ---- LoRA ------------------------------------------------------------------------------------


def test_lora_changes_the_image_and_is_gone_next_job(
    tiny_engine: Engine, make_job: MakeJob, tiny_lora_file: Path
) -> None:
    base = base_image(tiny_engine, make_job)
    with_lora = tiny_engine.run(make_job(), lora(tiny_lora_file)).images[0]
    after = base_image(tiny_engine, make_job)
    assert max_diff(base, with_lora.webp) > 20
    assert max_diff(base, after) <= TOLERANCE
    assert with_lora.metadata == ()


def test_lora_strengths_scale_model_and_clip_separately(
    tiny_engine: Engine, make_job: MakeJob, tiny_lora_file: Path
) -> None:
    base = base_image(tiny_engine, make_job)
    off = tiny_engine.run(make_job(), lora(tiny_lora_file, model=0.0, clip=0.0)).images[0].webp
    clip_only = (
        tiny_engine.run(make_job(), lora(tiny_lora_file, model=0.0, clip=1.0)).images[0].webp
    )
    model_only = (
        tiny_engine.run(make_job(), lora(tiny_lora_file, model=1.0, clip=0.0)).images[0].webp
    )
    assert max_diff(base, off) <= TOLERANCE
    assert max_diff(base, clip_only) > 5
    assert max_diff(base, model_only) > 5
    assert max_diff(clip_only, model_only) > 5


def test_two_loras_at_once(tiny_engine: Engine, make_job: MakeJob, tiny_lora_file: Path) -> None:
    one = tiny_engine.run(make_job(), lora(tiny_lora_file)).images[0].webp
    assets = JobAssets(
        loras=(
            (LoraSpec(name="1"), tiny_lora_file),
            (LoraSpec(name="2", model=-1.0, clip=-1.0), tiny_lora_file),
        )
    )
    # the same LoRA added at +1 and -1 cancels out
    result = tiny_engine.run(make_job(), assets).images[0]
    cancelled = result.webp
    assert result.metadata == ()
    assert max_diff(one, cancelled) > 20
    assert max_diff(base_image(tiny_engine, make_job), cancelled) <= 8


def test_unreadable_lora_is_skipped_and_reported(
    tiny_engine: Engine, make_job: MakeJob, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not safetensors")
    result = tiny_engine.run(make_job(), lora(broken, name="999"))
    assert result.images[0].metadata == (GenMetadata(type="lora", value="parse_failed", ref="999"),)
    assert max_diff(base_image(tiny_engine, make_job), result.images[0].webp) <= TOLERANCE


def test_lora_for_another_architecture_is_a_baseline_mismatch(
    tiny_engine: Engine, make_job: MakeJob, tiny_sdxl_lora_file: Path
) -> None:
    result = tiny_engine.run(make_job(), lora(tiny_sdxl_lora_file, name="31"))
    assert result.images[0].metadata == (
        GenMetadata(type="lora", value="baseline_mismatch", ref="31"),
    )
    assert max_diff(base_image(tiny_engine, make_job), result.images[0].webp) <= TOLERANCE


def test_a_job_that_fails_after_loading_a_lora_leaves_nothing_behind(
    tiny_engine: Engine, make_job: MakeJob, tiny_lora_file: Path
) -> None:
    base = base_image(tiny_engine, make_job)
    with pytest.raises(ValueError, match="divisible by 8"):
        tiny_engine.run(make_job(width=100), lora(tiny_lora_file))
    assert max_diff(base, base_image(tiny_engine, make_job)) <= TOLERANCE


def test_inject_trigger_adds_the_trained_words(
    tiny_engine: Engine, make_job: MakeJob, tiny_lora_file: Path
) -> None:
    plain = tiny_engine.run(make_job(), lora(tiny_lora_file)).images[0].webp
    assets = JobAssets(
        loras=((LoraSpec(name="5", inject_trigger="all"), tiny_lora_file),),
        trained_words=(("5", ("fox", "red")),),
    )
    triggered = tiny_engine.run(make_job(), assets).images[0].webp
    written = tiny_engine.run(
        make_job(prompt="a photo of a cat, fox, red ### blurry"), lora(tiny_lora_file)
    )
    assert max_diff(plain, triggered) > 5
    assert max_diff(written.images[0].webp, triggered) <= TOLERANCE


def test_asset_notes_reach_every_image(tiny_engine: Engine, make_job: MakeJob) -> None:
    note = GenMetadata(type="lora", value="download_failed", ref="777")
    result = tiny_engine.run(make_job(ids=("a", "b")), JobAssets(notes=(note,)))
    assert all(note in image.metadata for image in result.images)


def test_lcm_lora_with_the_lcm_sampler(
    tiny_engine: Engine, make_job: MakeJob, tiny_lora_file: Path
) -> None:
    # a random LoRA stands in for the LCM LoRA: same loading path, same scheduler
    job = make_job(sampler_name="lcm", ddim_steps=4, cfg_scale=1.0, karras=False)
    result = tiny_engine.run(job, lora(tiny_lora_file, name="225222", is_version=True))
    assert result.steps == 4
    assert max_diff(tiny_engine.run(job).images[0].webp, result.images[0].webp) > 20


def test_sdxl_lora_is_loaded_into_both_text_encoders_and_unloaded(
    tiny_engine: Engine, make_job: MakeJob, tiny_sdxl_lora_file: Path
) -> None:
    base = base_image(tiny_engine, make_job, model=TINY_SDXL)
    clip_only = tiny_engine.run(
        make_job(model=TINY_SDXL), lora(tiny_sdxl_lora_file, model=0.0, clip=1.0)
    )
    assert max_diff(base, clip_only.images[0].webp) > 5
    assert max_diff(base, base_image(tiny_engine, make_job, model=TINY_SDXL)) <= TOLERANCE


# ---- textual inversion -----------------------------------------------------------------------


def test_ti_loads_with_its_token_and_is_gone_next_job(
    tiny_engine: Engine, make_job: MakeJob, tiny_ti_file: Path
) -> None:
    size = tokenizer_size(tiny_engine)
    prompt = "a photo of embedding:4321 cat ### blurry"
    without = base_image(tiny_engine, make_job, prompt=prompt)
    assets = JobAssets(tis=((TISpec(name="4321"), tiny_ti_file),))
    with_ti = tiny_engine.run(make_job(prompt=prompt), assets).images[0]
    assert max_diff(without, with_ti.webp) > 5
    assert with_ti.metadata == ()
    assert tokenizer_size(tiny_engine) == size
    assert max_diff(without, base_image(tiny_engine, make_job, prompt=prompt)) <= TOLERANCE


def test_ti_weighted_reference_and_inject(
    tiny_engine: Engine, make_job: MakeJob, tiny_ti_file: Path
) -> None:
    weighted = make_job(prompt="(embedding:4321:1.0), a photo of a cat ### blurry")
    assets = JobAssets(tis=((TISpec(name="4321"), tiny_ti_file),))
    injected = JobAssets(tis=((TISpec(name="4321", inject_ti="prompt"), tiny_ti_file),))
    by_name = tiny_engine.run(weighted, assets).images[0].webp
    by_inject = (
        tiny_engine.run(make_job(prompt="a photo of a cat ### blurry"), injected).images[0].webp
    )
    assert max_diff(by_name, by_inject) <= TOLERANCE


def test_ti_in_the_negative_prompt(
    tiny_engine: Engine, make_job: MakeJob, tiny_ti_file: Path
) -> None:
    base = base_image(tiny_engine, make_job)
    assets = JobAssets(tis=((TISpec(name="8", inject_ti="negprompt", strength=0.5), tiny_ti_file),))
    result = tiny_engine.run(make_job(), assets).images[0]
    assert max_diff(base, result.webp) > 5
    assert any("strength" in (m.ref or "") for m in result.metadata)


def test_ti_for_another_architecture_is_a_baseline_mismatch(
    tiny_engine: Engine, make_job: MakeJob, tiny_sdxl_ti_file: Path
) -> None:
    assets = JobAssets(tis=((TISpec(name="66", inject_ti="prompt"), tiny_sdxl_ti_file),))
    result = tiny_engine.run(make_job(), assets).images[0]
    assert result.metadata == (GenMetadata(type="ti", value="baseline_mismatch", ref="66"),)


def test_sdxl_ti_loads_into_both_encoders(
    tiny_engine: Engine, make_job: MakeJob, tiny_sdxl_ti_file: Path
) -> None:
    sizes = (tokenizer_size(tiny_engine, TINY_SDXL),)
    assets = JobAssets(tis=((TISpec(name="66", inject_ti="prompt"), tiny_sdxl_ti_file),))
    base = base_image(tiny_engine, make_job, model=TINY_SDXL)
    result = tiny_engine.run(make_job(model=TINY_SDXL), assets).images[0]
    assert result.metadata == ()
    assert max_diff(base, result.webp) > 5
    assert (tokenizer_size(tiny_engine, TINY_SDXL),) == sizes
    loaded = tiny_engine._cache.get(tiny_engine._specs[TINY_SDXL]).txt2img
    assert not any(t.startswith("<ti") for t in loaded.tokenizer_2.get_added_vocab())
