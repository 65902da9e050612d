"""Loading the served models as diffusers pipelines, offline, and keeping the recent ones resident.

A model is a diffusers folder or a single ``.safetensors`` checkpoint in the original (LDM) layout,
which is what the horde's model reference and CivitAI distribute. A single file holds weights only:
the component configs and the tokenizer come from a diffusers-format folder of the same
architecture (``ModelSpec.config``), so loading never reaches a model hub.

Only SD1.5 and SDXL architectures are served; the pipeline class follows the model's baseline.
"""

from __future__ import annotations

import gc
import importlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Baseline = Literal["stable diffusion 1", "stable_diffusion_xl"]
BASELINES: tuple[Baseline, ...] = ("stable diffusion 1", "stable_diffusion_xl")
# Where a single-file checkpoint's configs live on the Hub; only looked up in the local HF cache.
HUB_CONFIG_REPOS: dict[Baseline, str] = {
    "stable diffusion 1": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stable_diffusion_xl": "stabilityai/stable-diffusion-xl-base-1.0",
}


def heavy(module: str) -> Any:
    """Import a diffusers/transformers module lazily, as ``Any``.

    Those libraries are only partly annotated; treating them as untyped keeps strict mypy about our
    code, and importing on first use keeps ``hordebot --help`` and the bots free of torch.
    """
    return importlib.import_module(module)


class ModelLoadError(Exception):
    """A served model cannot be loaded; the one-line message names the model and what to change."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model the worker serves: its horde name, where it is, and its architecture.

    ``path`` is a diffusers folder or a single ``.safetensors`` checkpoint. For a single file,
    ``config`` names a diffusers-format folder of the same architecture whose configs and
    tokenizer the loader uses (weights there are not read); without it, the Hugging Face cache
    must already hold the baseline's reference repo.
    """

    horde_name: str
    path: Path
    baseline: Baseline = "stable diffusion 1"
    config: Path | None = None


@dataclass(slots=True)
class LoadedModel:
    """A model resident on the device: its txt2img pipeline and, built on demand, img2img."""

    spec: ModelSpec
    txt2img: Any
    scheduler_config: dict[str, Any]
    native_size: int
    text_layers: int
    _img2img: Any = field(default=None, repr=False)

    @property
    def is_sdxl(self) -> bool:
        """Whether this is an SDXL model (two text encoders, size conditioning)."""
        return self.spec.baseline == "stable_diffusion_xl"

    def img2img(self) -> Any:
        """The img2img pipeline sharing this model's weights (no copy, no reload)."""
        if self._img2img is None:
            diffusers = heavy("diffusers")
            cls = (
                diffusers.StableDiffusionXLImg2ImgPipeline
                if self.is_sdxl
                else diffusers.StableDiffusionImg2ImgPipeline
            )
            self._img2img = cls.from_pipe(self.txt2img)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img


def default_device() -> str:
    """CUDA when there is a GPU, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    """Half precision on a GPU, full precision on the CPU (where fp16 is slow and lossy)."""
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


def quiet_libraries() -> None:
    """Silence per-file progress bars and info chatter; the worker logs its own progress."""
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        library_logging = heavy(name)
        library_logging.disable_progress_bar()
        library_logging.set_verbosity_error()


def _pipeline_class(baseline: Baseline) -> Any:
    diffusers = heavy("diffusers")
    if baseline == "stable_diffusion_xl":
        return diffusers.StableDiffusionXLPipeline
    return diffusers.StableDiffusionPipeline


def _extra_kwargs(baseline: Baseline) -> dict[str, Any]:
    # The horde worker runs its own safety check; diffusers' SD1 checker would need extra weights.
    if baseline == "stable diffusion 1":
        return {"safety_checker": None, "requires_safety_checker": False}
    return {}


def load_pipeline(spec: ModelSpec, device: str, dtype: torch.dtype) -> Any:
    """Load one model offline and move it to ``device``; problems become ``ModelLoadError``."""
    if spec.baseline not in BASELINES:
        raise ModelLoadError(
            f"model {spec.horde_name}: baseline {spec.baseline!r} is not served; "
            f"use one of {', '.join(BASELINES)}"
        )
    quiet_libraries()
    cls = _pipeline_class(spec.baseline)
    path = spec.path
    kwargs = {"dtype": dtype, "local_files_only": True, **_extra_kwargs(spec.baseline)}
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"model {spec.horde_name}: {path} is a folder without model_index.json; "
                "point path at a diffusers folder or a .safetensors file"
            )
        try:
            pipe = cls.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model {spec.horde_name}: cannot load {path}: {exc}") from exc
    elif path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ModelLoadError(
                f"model {spec.horde_name}: {path.name} is not a .safetensors file; "
                "pickled checkpoints are never loaded, convert it to safetensors"
            )
        if spec.config is not None:
            kwargs["config"] = str(spec.config)
        try:
            pipe = cls.from_single_file(str(path), **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            where = (
                f"config folder {spec.config}"
                if spec.config is not None
                else f"{HUB_CONFIG_REPOS[spec.baseline]} in the Hugging Face cache"
            )
            raise ModelLoadError(
                f"model {spec.horde_name}: cannot load {path.name} with the {where} ({exc}); "
                "set config to a diffusers folder of the same architecture"
            ) from exc
    else:
        raise ModelLoadError(f"model {spec.horde_name}: {path} does not exist; fix its path")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _loaded(spec: ModelSpec, pipe: Any) -> LoadedModel:
    return LoadedModel(
        spec=spec,
        txt2img=pipe,
        scheduler_config=dict(pipe.scheduler.config),
        native_size=int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor),
        text_layers=int(pipe.text_encoder.config.num_hidden_layers),
    )


class PipelineCache:
    """Keeps the most recently used models on the device, loading on first use.

    ``capacity`` bounds how many models are resident at once; the least recently used one is
    released when another has to load. Not thread-safe: the engine serialises its jobs.
    """

    def __init__(self, device: str, dtype: torch.dtype, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.device = device
        self.dtype = dtype
        self.capacity = capacity
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()

    def get(self, spec: ModelSpec) -> LoadedModel:
        """The loaded model for ``spec``, loading it (and releasing an older one) when needed."""
        found = self._models.get(spec.horde_name)
        if found is not None and found.spec == spec:
            self._models.move_to_end(spec.horde_name)
            return found
        self._models.pop(spec.horde_name, None)
        while len(self._models) >= self.capacity:
            name, _ = self._models.popitem(last=False)
            log.info("releasing model %s", name)
            self._release()
        log.info("loading model %s from %s", spec.horde_name, spec.path)
        loaded = _loaded(spec, load_pipeline(spec, self.device, self.dtype))
        self._models[spec.horde_name] = loaded
        return loaded

    @property
    def resident(self) -> tuple[str, ...]:
        """Names of the models on the device, least recently used first."""
        return tuple(self._models)

    def clear(self) -> None:
        """Release every model."""
        self._models.clear()
        self._release()

    def _release(self) -> None:
        import torch

        gc.collect()
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()


def clip_skip_for(baseline: Baseline, horde_clip_skip: int) -> int | None:
    """The diffusers ``clip_skip`` for the horde's value (1 = last layer, 2 = penultimate ...).

    SD1: diffusers counts layers skipped after the last, so horde N is diffusers N - 1.
    SDXL: diffusers starts at the penultimate layer and reads ``hidden_states[-(k + 2)]``, so horde
    N is k = N - 2; horde 1 (ComfyUI's last hidden layer, no final norm) is k = -1.
    """
    if baseline == "stable_diffusion_xl":
        return None if horde_clip_skip == 2 else horde_clip_skip - 2
    return None if horde_clip_skip <= 1 else horde_clip_skip - 1
