"""Kudos, job TTL and seeds: small pure functions over a request's parameters.

Cost (a simplification of the horde's learned job-time model, documented here so that operators
can predict it): one 512×512 image at 50 steps costs 10 kudos, and cost scales linearly with
pixels and steps; each LoRA adds 3 and any textual inversion adds 1; img2img and inpainting cost
the same as text-to-image. The requester pays that per finished, uncensored image; the worker's
owner earns the same per image it finishes (censored ones included). ``dry_run`` returns the cost
of all ``n`` images.

TTL follows the contract: 30 s plus 2 s per "accurate" step scaled by pixels/512², at least 150 s.
"""

from __future__ import annotations

import math
import random

from core.horde.wire import GenerationParams

BASE_KUDOS = 10.0
BASE_PIXELS = 512 * 512
BASE_STEPS = 50
LORA_KUDOS = 3.0
TI_KUDOS = 1.0
SEED_SPACE = 2**32
# Samplers that evaluate the model twice per step; the horde counts their steps double.
_DOUBLE_SAMPLERS = frozenset({"k_heun", "k_dpm_2", "k_dpm_2_a", "k_dpmpp_2s_a", "k_dpmpp_sde"})
_UPSCALERS = frozenset(
    {
        "RealESRGAN_x4plus",
        "RealESRGAN_x2plus",
        "RealESRGAN_x4plus_anime_6B",
        "NMKD_Siax",
        "4x_AnimeSharp",
        "4xNomos8kSC",
        "4xLSDIRplus",
        "4xNomosWebPhoto_RealPLKSR",
        "4xNomos2_realplksr_dysample",
        "4xNomos2_hq_dat2",
        "2xModernSpanimationV1",
    }
)


def image_kudos(params: GenerationParams) -> float:
    """What one image of these parameters costs (and earns), rounded to 2 decimals."""
    cost = BASE_KUDOS * (params.width * params.height / BASE_PIXELS) * (params.steps / BASE_STEPS)
    cost += LORA_KUDOS * len(params.loras) + (TI_KUDOS if params.tis else 0.0)
    return round(cost, 2)


def accurate_steps(params: GenerationParams) -> int:
    """Steps weighted by how many model evaluations the sampler does."""
    if params.sampler_name == "k_dpm_adaptive":
        return 40
    return params.steps * (2 if params.sampler_name in _DOUBLE_SAMPLERS else 1)


def job_ttl(params: GenerationParams, *, minimum: float, fixed: float | None) -> int:
    """Seconds a worker has to submit a popped job before it is re-queued."""
    if fixed is not None:
        return max(1, math.ceil(fixed))
    formula = 30 + accurate_steps(params) * 2 * (params.width * params.height / BASE_PIXELS)
    return math.ceil(max(minimum, formula))


def megapixelsteps(params: GenerationParams) -> float:
    """One image's work in megapixel-steps (the horde's unit of worker speed)."""
    return params.width * params.height * params.steps / 1_000_000


def upscaler_count(params: GenerationParams) -> int:
    """How many post-processors are upscalers (the horde allows one)."""
    return sum(1 for name in params.post_processing if name in _UPSCALERS)


def parse_seed(text: str) -> int:
    """The horde's seed rule: digits are a number, other text is read as bytes; below 2^32."""
    stripped = text.strip()
    value = int(stripped) if stripped.isdigit() else int.from_bytes(text.encode(), "big")
    return value % SEED_SPACE


def image_seeds(params: GenerationParams, rng: random.Random | None = None) -> list[int]:
    """One seed per image: the given seed plus k·seed_variation, else random per image."""
    if params.seed is None or params.seed == "":
        draw = rng or random.Random()
        return [draw.randrange(SEED_SPACE) for _ in range(params.n)]
    base = parse_seed(params.seed)
    # With no variation given the images would all be the same; the horde steps by 1.
    step = params.seed_variation or 1
    return [(base + k * step) % SEED_SPACE for k in range(params.n)]
