"""The exact ``POST /v2/generate/async`` body for a request: spec + style + model + channel policy.

Every setting is decided by one precedence: what the user typed, then the style, then the model
reference's requirement, then the default declared in ``core.commands``. Where the user asks for
something the model reference says the model does not want, the value is kept and a warning says
so (the horde itself only warns too); a style's own choices are kept without one. The result is
validated by the wire models in ``core.horde.wire``, the only place that knows horde JSON.

Rules decided here, so every platform behaves the same:

* **karras**: a style without ``karras`` gets the model's scheduler requirement, else ``true``
  (the fediverse bot's rule, and the horde's effective default);
* **size**: ``--size`` beats ``--ar`` (both at once is an error), which beats the style's size,
  which beats the baseline's native square; sides snap to multiples of 64 within 64..3072, and
  an area under the baseline's minimum (``core.model_reference.min_pixels``) is scaled up keeping
  the aspect; ``--ar`` aims at the baseline's native area (512² SD 1.5, 1024² SDXL);
* **LCM**: ``--lcm`` adds the baseline's LCM LoRA, sampler ``lcm``, 4-8 steps (default 4) and
  CFG 1-2 (default 1.5); the user's values outside are clamped with a warning, the style's are
  replaced (they were chosen for normal sampling);
* **LoRAs and TIs**: the user's first, then the style's, each once (LoRAs by name and kind, TIs
  by name); more than the horde takes is an error saying how many to drop;
* **hires fix**: dropped (with a warning) on baselines the horde refuses it for (Flux); kept
  elsewhere, with a warning when the user asks for it on a model the reference marks as not
  supporting it (upstream styles use it on Stable Cascade, which the reference marks so);
* **NSFW**: decided by the channel (``core.policy``), never by a style;
* **categories**: ``n`` images over up to ``max_styles`` distinct styles, one request each.
"""

from __future__ import annotations

import math
import random
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from core.commands import DREAM
from core.errors import UserError
from core.horde.wire import (
    KNOWN_SAMPLERS,
    MAX_LORAS,
    MAX_SIDE,
    MAX_TIS,
    MIN_SIDE,
    PROMPT_SEPARATOR,
    SIDE_STEP,
    GenerationInput,
    GenerationParams,
    LoraSpec,
    TISpec,
)
from core.model_reference import (
    LCM_CFG_SCALE,
    LCM_SAMPLER,
    LCM_STEPS,
    Baseline,
    ModelInfo,
    ModelReference,
    Requirements,
    default_size,
    lcm_lora,
    min_pixels,
    native_side,
)
from core.policy import ChannelPolicy
from core.request import RequestSpec
from core.unset import UNSET, Unset, is_set
from styles.expand import StylePick, UnknownStyle, fill_template, merge_enhancement, pick_styles
from styles.library import Style, StyleLibrary

LCM_STEP_RANGE = (4, 8)
LCM_CFG_RANGE = (1.0, 2.0)
MAX_PROMPT_WORDS = 7500  # the horde refuses longer prompts (InvalidPromptSize)
# Baselines whose models cannot take the hires fix (the horde answers HiResMismatch).
NO_HIRES_BASELINES = frozenset({Baseline.FLUX, "qwen_image", "z_image"})
# Style keys that go to the top level of the body; the other extras go to ``params``. The
# channel policy alone decides nsfw and censor_nsfw, so a style cannot set them.
_TOP_LEVEL_EXTRAS = frozenset(
    {
        "trusted_workers",
        "validated_backends",
        "slow_workers",
        "extra_slow_workers",
        "shared",
        "replacement_filter",
        "disable_batching",
        "allow_downgrade",
    }
)
_POLICY_EXTRAS = frozenset({"nsfw", "censor_nsfw"})

T = TypeVar("T")


def _default(name: str, kind: type[T]) -> T:
    value = DREAM.option(name).default
    if not isinstance(value, kind):
        raise TypeError(f"dream option {name} has no {kind.__name__} default")
    return value


DEFAULT_STEPS = _default("steps", int)
DEFAULT_CFG = _default("cfg", float)
DEFAULT_N = _default("n", int)
DEFAULT_SAMPLER = _default("sampler", str)
DEFAULT_CLIP_SKIP = _default("clip_skip", int)
DEFAULT_KARRAS = _default("karras", bool)
DEFAULT_HIRES = _default("hires", bool)
DEFAULT_TILING = _default("tiling", bool)


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """What a deployment (or platform) decides: defaults below the user's and the style's.

    ``default_model`` is used when neither the user nor the style names one; ``max_styles`` is
    how many distinct styles a category may draw for one command (the fediverse bot uses 4).
    """

    default_style: str | None = None
    default_model: str = "AlbedoBase XL (SDXL)"
    default_n: int = DEFAULT_N
    max_styles: int = 4


DEFAULT_SETTINGS = BuildSettings()


@dataclass(frozen=True, slots=True)
class BuiltRequest:
    """One horde request a command turned into, with the style used and warnings for the user."""

    body: GenerationInput
    style: str | None = None
    category: str | None = None
    warnings: tuple[str, ...] = ()


def snap(side: float) -> int:
    """A side in pixels as the nearest multiple of 64 within 64..3072."""
    return max(MIN_SIDE, min(MAX_SIDE, round(side / SIDE_STEP) * SIDE_STEP))


def size_for_ratio(ratio: tuple[int, int], budget: int) -> tuple[int, int]:
    """(width, height) with the aspect ``ratio`` and about ``budget`` pixels, snapped to 64."""
    ratio_w, ratio_h = ratio
    width = math.sqrt(budget * ratio_w / ratio_h)
    return snap(width), snap(budget / width)


def raise_to_area(width: int, height: int, area: int) -> tuple[int, int]:
    """(width, height) scaled up, keeping the aspect, to at least ``area`` pixels (snapped up)."""
    if width * height >= area:
        return width, height
    scale = math.sqrt(area / (width * height))

    def up(side: int) -> int:
        return min(MAX_SIDE, math.ceil(side * scale / SIDE_STEP) * SIDE_STEP)

    return up(width), up(height)


class _Notes:
    """The warnings of one request, each once, in order."""

    def __init__(self) -> None:
        self._items: dict[str, None] = {}

    def add(self, text: str) -> None:
        self._items.setdefault(text, None)

    def all(self) -> tuple[str, ...]:
        return tuple(self._items)


def _from_style(style: Style | None, attribute: str) -> Any:
    """A style's setting, or UNSET when there is no style or it leaves the setting open."""
    if style is None:
        return UNSET
    value = getattr(style, attribute)
    return UNSET if value is None else value


def _first(*candidates: tuple[str, Any]) -> tuple[str, Any]:
    """The first (source, value) whose value is set; the last candidate is the default."""
    for source, value in candidates:
        if is_set(value):
            return source, value
    return candidates[-1]


def _model(
    spec: RequestSpec, style: Style | None, reference: ModelReference, settings: BuildSettings
) -> tuple[str, ModelInfo | None, str | None]:
    """The model name to send, its reference entry, and a warning when it has none."""
    if isinstance(spec.model, str):
        info = reference.get(spec.model)
        if info is None:
            close = reference.closest(spec.model)
            hint = f"closest: {', '.join(close)}" if close else "see /models"
            raise UserError(f"unknown model {spec.model!r}", hint=hint)
        return info.name, info, None
    if style is not None and style.model:
        info = reference.get(style.model)
        if info is None:
            return (
                style.model,
                None,
                f"style {style.name!r} uses model {style.model!r}, which the model reference "
                "does not list; sent as it is, unchecked",
            )
        return info.name, info, None
    info = reference.get(settings.default_model)
    if info is None:
        return (
            settings.default_model,
            None,
            f"default model {settings.default_model!r} is not in the model reference; "
            "sent as it is, unchecked",
        )
    return info.name, info, None


def _clamp(value: float, low: float, high: float, what: str, why: str, notes: _Notes) -> float:
    if low <= value <= high:
        return value
    clamped = min(high, max(low, value))
    notes.add(f"{what} {value:g} changed to {clamped:g}: {why} takes {low:g} to {high:g}")
    return clamped


def _sampler(
    spec: RequestSpec, style: Style | None, req: Requirements, model: str, notes: _Notes
) -> str:
    style_sampler = _from_style(style, "sampler_name")
    if isinstance(style_sampler, str) and style_sampler not in KNOWN_SAMPLERS:
        notes.add(f"style sampler {style_sampler!r} is not a horde sampler; using the default")
        style_sampler = UNSET
    required = req.samplers[0] if req.samplers and req.samplers[0] in KNOWN_SAMPLERS else UNSET
    source, sampler = _first(
        ("you", spec.sampler),
        ("the style", style_sampler),
        ("the model", required),
        ("default", DEFAULT_SAMPLER),
    )
    if source == "you" and req.samplers and sampler not in req.samplers:
        notes.add(
            f"{model} is meant for sampler {'/'.join(req.samplers)}; {sampler} kept as you asked"
        )
    return str(sampler)


def _steps(
    spec: RequestSpec, style: Style | None, req: Requirements, model: str, notes: _Notes
) -> int:
    required: int | Unset = UNSET
    if req.min_steps is not None or req.max_steps is not None:
        low = req.min_steps or 1
        high = req.max_steps or DEFAULT_STEPS
        required = min(max(DEFAULT_STEPS, low), high)
    source, steps = _first(
        ("you", spec.steps),
        ("the style", _from_style(style, "steps")),
        ("the model", required),
        ("default", DEFAULT_STEPS),
    )
    if source == "you" and req.min_steps is not None and steps < req.min_steps:
        notes.add(f"{model} wants at least {req.min_steps} steps; {steps} kept as you asked")
    if source == "you" and req.max_steps is not None and steps > req.max_steps:
        notes.add(f"{model} wants at most {req.max_steps} steps; {steps} kept as you asked")
    return int(steps)


def _cfg(
    spec: RequestSpec, style: Style | None, req: Requirements, model: str, notes: _Notes
) -> float:
    required: float | Unset = UNSET
    if req.cfg_scale is not None:
        required = req.cfg_scale
    elif req.min_cfg_scale is not None or req.max_cfg_scale is not None:
        low = req.min_cfg_scale if req.min_cfg_scale is not None else 0.0
        high = req.max_cfg_scale if req.max_cfg_scale is not None else DEFAULT_CFG
        required = min(max(DEFAULT_CFG, low), high)
    source, cfg = _first(
        ("you", spec.cfg_scale),
        ("the style", _from_style(style, "cfg_scale")),
        ("the model", required),
        ("default", DEFAULT_CFG),
    )
    cfg = float(cfg)
    if source == "you" and req.cfg_scale is not None and cfg != req.cfg_scale:
        notes.add(f"{model} is meant for CFG {req.cfg_scale:g}; {cfg:g} kept as you asked")
    if source == "you" and req.min_cfg_scale is not None and cfg < req.min_cfg_scale:
        notes.add(f"{model} wants CFG at least {req.min_cfg_scale:g}; {cfg:g} kept as you asked")
    if source == "you" and req.max_cfg_scale is not None and cfg > req.max_cfg_scale:
        notes.add(f"{model} wants CFG at most {req.max_cfg_scale:g}; {cfg:g} kept as you asked")
    return cfg


def _karras(
    spec: RequestSpec, style: Style | None, req: Requirements, model: str, notes: _Notes
) -> bool:
    required: bool | Unset = UNSET
    if req.schedulers:
        required = "karras" in req.schedulers
    source, karras = _first(
        ("you", spec.karras),
        ("the style", _from_style(style, "karras")),
        ("the model", required),
        ("default", DEFAULT_KARRAS),
    )
    if source == "you" and is_set(required) and karras != required:
        schedule = "karras" if required else "a non-karras schedule"
        notes.add(f"{model} is meant for {schedule}; karras {karras} kept as you asked")
    return bool(karras)


def _clip_skip(
    spec: RequestSpec, style: Style | None, req: Requirements, model: str, notes: _Notes
) -> int:
    required = UNSET if req.clip_skip is None else req.clip_skip
    source, clip_skip = _first(
        ("you", spec.clip_skip),
        ("the style", _from_style(style, "clip_skip")),
        ("the model", required),
        ("default", DEFAULT_CLIP_SKIP),
    )
    if source == "you" and req.clip_skip is not None and clip_skip != req.clip_skip:
        notes.add(f"{model} is meant for clip skip {req.clip_skip}; {clip_skip} kept as you asked")
    return int(clip_skip)


def _size(spec: RequestSpec, style: Style | None, baseline: str, notes: _Notes) -> tuple[int, int]:
    native_w, native_h = default_size(baseline)
    if is_set(spec.size) and is_set(spec.aspect):
        raise UserError("--size and --ar both set the size; give one of them")
    if isinstance(spec.size, tuple):
        source, (width, height) = "your size", spec.size
    elif isinstance(spec.aspect, tuple):
        source = "size"
        width, height = size_for_ratio(spec.aspect, native_side(baseline) ** 2)
    elif style is not None and (style.width is not None or style.height is not None):
        source = "the style's size"
        width, height = style.width or native_w, style.height or native_h
    else:
        source, (width, height) = "size", (native_w, native_h)
    snapped = snap(width), snap(height)
    if snapped != (width, height):
        notes.add(
            f"{source} {width}x{height} changed to {snapped[0]}x{snapped[1]}: "
            f"sides are multiples of {SIDE_STEP} from {MIN_SIDE} to {MAX_SIDE}"
        )
    least = min_pixels(baseline)
    raised = raise_to_area(*snapped, least)
    if raised != snapped:
        short = "" if raised[0] * raised[1] >= least else f" (as far as {MAX_SIDE} per side allows)"
        notes.add(
            f"size {snapped[0]}x{snapped[1]} raised to {raised[0]}x{raised[1]}{short}: "
            f"{baseline or 'this model'} models need at least {least} pixels"
        )
    return raised


_Named = TypeVar("_Named", LoraSpec, TISpec)


def _unique(items: Iterable[_Named], key: Callable[[_Named], object]) -> list[_Named]:
    seen: dict[object, _Named] = {}
    for item in items:
        seen.setdefault(key(item), item)
    return list(seen.values())


def _loras(spec: RequestSpec, style: Style | None, lcm: tuple[str, bool] | None) -> list[LoraSpec]:
    user = [LoraSpec(name=x.name, model=x.strength, is_version=x.is_version) for x in spec.loras]
    if lcm is not None:
        user.append(LoraSpec(name=lcm[0], is_version=lcm[1]))
    own = _unique(user, lambda x: (x.name, x.is_version))
    from_style = [
        LoraSpec(
            name=x.name,
            model=x.model,
            clip=x.clip,
            inject_trigger=x.inject_trigger,
            is_version=x.is_version,
        )
        for x in (style.loras if style else ())
    ]
    merged = _unique([*own, *from_style], lambda x: (x.name, x.is_version))
    if len(merged) > MAX_LORAS:
        _too_many("LoRAs", len(merged), len(own), style, MAX_LORAS, "--lora or --lcm")
    return merged


def _tis(spec: RequestSpec, style: Style | None) -> list[TISpec]:
    own = _unique(
        [TISpec(name=x.name, inject_ti=x.inject, strength=x.strength) for x in spec.tis],
        lambda x: x.name,
    )
    from_style = [
        TISpec(name=x.name, inject_ti=x.inject_ti, strength=x.strength)
        for x in (style.tis if style else ())
    ]
    merged = _unique([*own, *from_style], lambda x: x.name)
    if len(merged) > MAX_TIS:
        _too_many("textual inversions", len(merged), len(own), style, MAX_TIS, "--ti or embedding:")
    return merged


def _too_many(what: str, count: int, yours: int, style: Style | None, limit: int, how: str) -> None:
    drop = count - limit
    if style is None or drop <= yours:
        raise UserError(
            f"{count} {what} asked for; the horde takes at most {limit}",
            hint=f"drop {drop} of your {how}",
        )
    raise UserError(
        f"{count} {what} asked for ({yours} yours, the rest from style {style.name!r}); "
        f"the horde takes at most {limit}",
        hint="pick another style or fewer of your own",
    )


def _prompt(spec: RequestSpec, style: Style | None) -> str:
    negative = spec.negative if isinstance(spec.negative, str) else ""
    if style is not None:
        text = fill_template(style.prompt, spec.prompt, negative)
    else:
        positive = " ".join(spec.prompt.replace(PROMPT_SEPARATOR, " ").split())
        text = f"{positive}{PROMPT_SEPARATOR}{negative}" if negative else positive
    if not text.partition(PROMPT_SEPARATOR)[0].strip():
        raise UserError("the prompt is empty: say what to draw")
    if len(text.split()) > MAX_PROMPT_WORDS:
        raise UserError(f"the prompt is too long: the horde takes at most {MAX_PROMPT_WORDS} words")
    return text


def _build_one(
    spec: RequestSpec,
    chosen: StylePick | None,
    n: int,
    library: StyleLibrary,
    reference: ModelReference,
    policy: ChannelPolicy,
    settings: BuildSettings,
) -> BuiltRequest:
    notes = _Notes()
    style = chosen.style if chosen else None
    model, info, model_note = _model(spec, style, reference, settings)
    if model_note:
        notes.add(model_note)
    baseline = info.baseline if info else ""
    req = info.requirements if info else Requirements()
    if style is not None and style.enhance:
        enhancement = library.enhancements.get(baseline)
        style = merge_enhancement(style, enhancement) if enhancement else style

    lcm = lcm_lora(baseline) if spec.lcm is True else None
    if spec.lcm is True and lcm is None:
        raise UserError(
            f"--lcm works with SD 1.5 and SDXL models only; {model} is "
            f"{baseline or 'of an unknown kind'}",
            hint="drop --lcm or pick another --model",
        )
    if lcm is not None:
        sampler = LCM_SAMPLER
        if isinstance(spec.sampler, str) and spec.sampler != LCM_SAMPLER:
            notes.add(f"sampler {spec.sampler} replaced by {LCM_SAMPLER} for --lcm")
        steps = int(
            _clamp(
                spec.steps if isinstance(spec.steps, int) else LCM_STEPS,
                *LCM_STEP_RANGE,
                "steps",
                "--lcm",
                notes,
            )
        )
        cfg = _clamp(
            spec.cfg_scale if isinstance(spec.cfg_scale, int | float) else LCM_CFG_SCALE,
            *LCM_CFG_RANGE,
            "CFG",
            "--lcm",
            notes,
        )
    else:
        sampler = _sampler(spec, style, req, model, notes)
        steps = _steps(spec, style, req, model, notes)
        cfg = _cfg(spec, style, req, model, notes)
    if round(cfg, 2) != cfg:
        notes.add(f"CFG {cfg:g} rounded to {round(cfg, 2):g}: the horde takes 2 decimals")
        cfg = round(cfg, 2)

    hires_source, hires = _first(
        ("you", spec.hires_fix), ("the style", _from_style(style, "hires_fix")), ("", DEFAULT_HIRES)
    )
    if hires and baseline in NO_HIRES_BASELINES:
        # The horde refuses these outright (HiResMismatch), so sending it would fail.
        notes.add(f"hires fix left out: {model} cannot use it")
        hires = False
    elif hires and hires_source == "you" and info and "hires_fix" in info.features_not_supported:
        notes.add(f"the model reference lists hires fix as unsupported by {model}; kept as asked")

    extras = dict(style.extras) if style else {}
    for key in sorted(_POLICY_EXTRAS & extras.keys()):
        notes.add(f"style setting {key} ignored: the channel decides NSFW")
    top = {k: v for k, v in extras.items() if k in _TOP_LEVEL_EXTRAS}
    in_params = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in extras.items()
        if k not in _TOP_LEVEL_EXTRAS and k not in _POLICY_EXTRAS
    }
    tiling = _first(
        ("you", spec.tiling), ("the style", in_params.pop("tiling", UNSET)), ("", DEFAULT_TILING)
    )[1]
    width, height = _size(spec, style, baseline, notes)
    source = _source_image(spec)
    if source is not None:
        top["source_image"] = source
        top["source_processing"] = "img2img"
        if isinstance(spec.denoising_strength, float):
            in_params["denoising_strength"] = spec.denoising_strength
    elif isinstance(spec.denoising_strength, float):
        notes.add("--denoise ignored: it needs --image")
    decision = policy.nsfw(spec.nsfw)
    if decision.warning:
        notes.add(decision.warning)

    try:
        params = GenerationParams(
            sampler_name=sampler,  # checked against KNOWN_SAMPLERS above
            cfg_scale=cfg,
            width=width,
            height=height,
            seed=spec.seed if isinstance(spec.seed, str) else None,
            karras=_karras(spec, style, req, model, notes),
            tiling=bool(tiling),
            hires_fix=bool(hires),
            clip_skip=_clip_skip(spec, style, req, model, notes),
            loras=_loras(spec, style, lcm),
            tis=_tis(spec, style),
            steps=steps,
            n=n,
            **in_params,
        )
        body = GenerationInput(
            prompt=_prompt(spec, style),
            params=params,
            nsfw=decision.nsfw,
            censor_nsfw=decision.censor_nsfw,
            models=[model],
            r2=True,
            **top,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        named = f"style {style.name!r}" if style else "this request"
        raise UserError(f"{named} cannot be sent to the horde: {where}: {err['msg']}") from None
    return BuiltRequest(
        body=body,
        style=style.name if style else None,
        category=chosen.category if chosen else None,
        warnings=notes.all(),
    )


def _source_image(spec: RequestSpec) -> str | None:
    """The img2img source as the horde takes it: an http(s) address it fetches itself."""
    if not isinstance(spec.source_image, str):
        return None
    address = spec.source_image.strip().strip("<>")
    parsed = urllib.parse.urlsplit(address)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(
            f"--image needs an http(s) address, not {spec.source_image[:60]!r}",
            hint="e.g. --image https://example.org/photo.png",
        )
    return address


def split_count(total: int, parts: int) -> list[int]:
    """``total`` images over ``parts`` requests, as evenly as possible, larger shares first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def build_requests(
    spec: RequestSpec,
    *,
    library: StyleLibrary,
    reference: ModelReference,
    policy: ChannelPolicy,
    rng: random.Random,
    settings: BuildSettings = DEFAULT_SETTINGS,
    usable: Callable[[Style], bool] | None = None,
) -> list[BuiltRequest]:
    """The horde requests ``spec`` turns into: one, or one per style drawn from a category.

    ``rng`` draws the styles (seed it for repeatable draws); ``usable`` filters a category's
    styles first (e.g. "its model has workers"). Raises ``UserError`` for what the user must
    change: an unknown style or model, too many LoRAs, ``--lcm`` on a model without one ...
    """
    n = spec.n if isinstance(spec.n, int) else settings.default_n
    name = spec.style if isinstance(spec.style, str) else settings.default_style
    picks: list[StylePick | None] = [None]
    if name is not None:
        try:
            picks = list(
                pick_styles(library, name, max(1, min(n, settings.max_styles)), rng, usable=usable)
            )
        except UnknownStyle as exc:
            raise UserError(str(exc), hint="see /styles") from None
    counts = split_count(n, len(picks))
    return [
        _build_one(spec, chosen, count, library, reference, policy, settings)
        for chosen, count in zip(picks, counts, strict=True)
        if count > 0
    ]
