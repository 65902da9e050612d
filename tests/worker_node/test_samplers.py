"""Horde sampler names → diffusers schedulers: every name covered, Karras where possible."""

from __future__ import annotations

import itertools
import math

import pytest

from core.horde.wire import KNOWN_SAMPLERS
from worker_node import samplers
from worker_node.samplers import SAMPLERS, build_scheduler, karras_sigmas, supports_karras

pytestmark = [
    # diffusers 0.42 schedulers hand torch tensors to numpy, and numpy 2.4 deprecates the old
    # signatures of torch's __array__/__array_wrap__. Not ours to change; harmless.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

SD15_SCHEDULE = {
    "_class_name": "PNDMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "timestep_spacing": "leading",
}


def test_every_horde_sampler_name_has_a_recipe() -> None:
    assert set(KNOWN_SAMPLERS) <= set(SAMPLERS)


@pytest.mark.parametrize("karras", [True, False])
@pytest.mark.parametrize("name", KNOWN_SAMPLERS)
def test_every_horde_sampler_builds_and_sets_timesteps(name: str, karras: bool) -> None:
    choice = build_scheduler(name, karras, SD15_SCHEDULE)
    choice.scheduler.set_timesteps(4)
    assert len(choice.scheduler.timesteps) >= 4
    # the model's noise schedule carries over whatever the sampler
    assert choice.scheduler.config.beta_schedule == "scaled_linear"
    assert choice.scheduler.config.beta_end == pytest.approx(0.012)


@pytest.mark.parametrize(
    ("name", "scheduler"),
    [
        ("k_euler", "EulerDiscreteScheduler"),
        ("k_euler_a", "EulerAncestralDiscreteScheduler"),
        ("k_heun", "HeunDiscreteScheduler"),
        pytest.param(
            "k_lms",
            "LMSDiscreteScheduler",
            marks=pytest.mark.skipif(not samplers._has_scipy(), reason="LMS needs scipy"),
        ),
        ("k_dpm_2", "KDPM2DiscreteScheduler"),
        ("k_dpm_2_a", "KDPM2AncestralDiscreteScheduler"),
        ("k_dpmpp_2m", "DPMSolverMultistepScheduler"),
        ("DDIM", "DDIMScheduler"),
        ("lcm", "LCMScheduler"),
    ],
)
def test_exact_samplers_map_to_their_diffusers_scheduler_without_notes(
    name: str, scheduler: str
) -> None:
    choice = build_scheduler(name, karras=False, model_config=SD15_SCHEDULE)
    assert scheduler in {cls.__name__ for cls in type(choice.scheduler).__mro__}
    assert choice.notes == ()


@pytest.mark.parametrize(
    "name", ["k_euler", "k_heun", "k_lms", "k_dpm_2", "k_dpm_2_a", "k_dpmpp_2m"]
)
def test_karras_is_used_where_the_scheduler_supports_it(name: str) -> None:
    choice = build_scheduler(name, karras=True, model_config=SD15_SCHEDULE)
    assert choice.scheduler.config.use_karras_sigmas is True
    assert not any("karras" in note for note in choice.notes)
    plain = build_scheduler(name, karras=False, model_config=SD15_SCHEDULE)
    assert plain.scheduler.config.use_karras_sigmas is False


def test_euler_a_with_karras_runs_on_karras_sigmas() -> None:
    choice = build_scheduler("k_euler_a", karras=True, model_config=SD15_SCHEDULE)
    assert choice.notes == ()
    scheduler = choice.scheduler
    scheduler.set_timesteps(6)
    sigmas = [float(s) for s in scheduler.sigmas]
    assert sigmas[-1] == 0.0
    roots = [s ** (1 / 7) for s in sigmas[:-1]]
    gaps = [a - b for a, b in itertools.pairwise(roots)]
    assert max(gaps) - min(gaps) < 1e-4  # evenly spaced in sigma^(1/rho): Karras' schedule
    # from the model's largest noise level (t = 999) to its smallest (t = 0)
    assert sigmas[0] == pytest.approx(14.61, rel=0.01)
    assert sigmas[-2] == pytest.approx(0.0292, rel=0.02)
    assert float(scheduler.timesteps[0]) == pytest.approx(999, abs=0.5)
    plain = build_scheduler("k_euler_a", karras=False, model_config=SD15_SCHEDULE).scheduler
    plain.set_timesteps(6)
    assert [float(s) for s in plain.sigmas] != pytest.approx(sigmas)


def test_karras_sigmas_formula() -> None:
    values = karras_sigmas(0.1, 10.0, 3)
    assert values[0] == pytest.approx(10.0)
    assert values[-1] == pytest.approx(0.1)
    middle = ((10.0 ** (1 / 7) + 0.1 ** (1 / 7)) / 2) ** 7
    assert values[1] == pytest.approx(middle)
    assert karras_sigmas(0.1, 10.0, 1) == [10.0]


@pytest.mark.parametrize("name", ["k_dpm_fast", "k_dpm_adaptive", "k_dpmpp_2s_a", "dpmsolver"])
def test_approximated_samplers_say_what_ran(name: str) -> None:
    choice = build_scheduler(name, karras=False, model_config=SD15_SCHEDULE)
    assert len(choice.notes) == 1
    assert choice.notes[0].startswith(name)


def test_karras_request_on_a_scheduler_without_it_is_noted() -> None:
    choice = build_scheduler("DDIM", karras=True, model_config=SD15_SCHEDULE)
    assert not supports_karras(type(choice.scheduler))
    assert any("karras" in note for note in choice.notes)


def test_dpmpp_sde_without_torchsde_runs_the_multistep_sde_solver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(samplers, "_has_torchsde", lambda: False)
    choice = build_scheduler("k_dpmpp_sde", karras=True, model_config=SD15_SCHEDULE)
    assert type(choice.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert choice.scheduler.config.algorithm_type == "sde-dpmsolver++"
    assert choice.scheduler.config.use_karras_sigmas is True
    assert any("torchsde" in note for note in choice.notes)


def test_lms_without_scipy_runs_euler_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samplers, "_has_scipy", lambda: False)
    choice = build_scheduler("k_lms", karras=True, model_config=SD15_SCHEDULE)
    assert type(choice.scheduler).__name__ == "EulerDiscreteScheduler"
    assert choice.scheduler.config.use_karras_sigmas is True
    assert choice.notes == ("k_lms ran as k_euler (scipy is not installed)",)


def test_unknown_sampler_runs_the_horde_default_and_says_so() -> None:
    choice = build_scheduler("k_warp_drive", karras=False, model_config=SD15_SCHEDULE)
    assert type(choice.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert choice.notes == ("unknown sampler k_warp_drive ran as k_euler_a",)


def test_model_prediction_type_carries_over() -> None:
    v_model = {**SD15_SCHEDULE, "prediction_type": "v_prediction"}
    for name in ("k_euler", "k_dpmpp_2m", "lcm", "DDIM"):
        choice = build_scheduler(name, karras=False, model_config=v_model)
        assert choice.scheduler.config.prediction_type == "v_prediction"


def test_k_samplers_start_at_the_last_training_step() -> None:
    # ComfyUI's normal schedule starts at t = 999; diffusers' "leading" default would not.
    choice = build_scheduler("k_euler", karras=False, model_config=SD15_SCHEDULE)
    choice.scheduler.set_timesteps(4)
    assert float(choice.scheduler.timesteps[0]) == pytest.approx(999)
    assert math.isclose(float(choice.scheduler.timesteps[-1]), 0.0, abs_tol=1e-6)


def test_lcm_keeps_its_own_spacing() -> None:
    choice = build_scheduler("lcm", karras=False, model_config=SD15_SCHEDULE)
    choice.scheduler.set_timesteps(4)
    assert [int(t) for t in choice.scheduler.timesteps] == [999, 759, 499, 259]
