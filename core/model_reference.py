"""The image model reference: each horde model's baseline, flags and generation requirements.

Upstream is ``stable_diffusion.json`` of Haidra-Org/AI-Horde-image-model-reference (model name ->
record). It is read at run time through ``styles.source`` (fresh cache, network, stale cache)
and falls back to a small reference of our own (``core/model_reference_fallback.json``) so the
bots work offline. Size rules per baseline and the LCM LoRA choice live here too, because both
depend only on the baseline.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from styles.source import read

log = logging.getLogger(__name__)

REFERENCE_FILE = "stable_diffusion.json"
FALLBACK_FILE = "model_reference_fallback.json"


class Baseline(StrEnum):
    """The baselines the reference uses today; ``ModelInfo.baseline`` also keeps unknown ones."""

    SD1 = "stable diffusion 1"
    SD2 = "stable diffusion 2"
    SDXL = "stable_diffusion_xl"
    CASCADE = "stable_cascade"
    FLUX = "flux_1"


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a model needs from a request; ``None`` means no requirement.

    ``cfg_scale`` is an exact value the model wants; ``min_cfg_scale``/``max_cfg_scale`` a range.
    ``schedulers`` uses the reference's words (``karras`` means ``karras: true``).
    """

    clip_skip: int | None = None
    min_steps: int | None = None
    max_steps: int | None = None
    cfg_scale: float | None = None
    min_cfg_scale: float | None = None
    max_cfg_scale: float | None = None
    samplers: tuple[str, ...] | None = None
    schedulers: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model of the reference; ``baseline`` is a ``Baseline`` value or an unknown string."""

    name: str
    baseline: str
    nsfw: bool
    inpainting: bool
    requirements: Requirements
    features_not_supported: tuple[str, ...]
    style: str | None = None
    trigger: tuple[str, ...] = ()


class ModelReference:
    """An immutable set of ``ModelInfo`` looked up by name, ignoring case."""

    __slots__ = ("_by_key", "_names", "origin")

    def __init__(self, models: Mapping[str, ModelInfo], origin: str) -> None:
        self._by_key: Mapping[str, ModelInfo] = MappingProxyType(
            {info.name.casefold(): info for info in models.values()}
        )
        self._names: tuple[str, ...] = tuple(sorted(info.name for info in models.values()))
        self.origin = origin

    def get(self, name: str) -> ModelInfo | None:
        """The model called ``name`` (any case), or ``None``."""
        return self._by_key.get(name.strip().casefold())

    def names(self) -> list[str]:
        """Every model name as spelt upstream, sorted."""
        return list(self._names)

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` model names that look like ``name``, best first."""
        by_key = {x.casefold(): x for x in self._names}
        query = name.strip().casefold()
        found = difflib.get_close_matches(query, list(by_key), n=n, cutoff=0.6)
        if len(found) < n and query:
            found += [k for k in by_key if query in k and k not in found][: n - len(found)]
        return [by_key[k] for k in found]

    def baselines(self) -> dict[str, int]:
        """How many models each baseline has, most first."""
        return dict(Counter(info.baseline for info in self._by_key.values()).most_common())

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._by_key[k.casefold()] for k in self._names)

    def __repr__(self) -> str:
        return f"ModelReference({len(self)} models, origin={self.origin!r})"


# --- parsing -----------------------------------------------------------------------------------


class _RequirementsIn(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    clip_skip: int | None = Field(default=None, ge=1, le=12)
    min_steps: int | None = Field(default=None, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    cfg_scale: float | None = Field(default=None, ge=0)
    min_cfg_scale: float | None = Field(default=None, ge=0)
    max_cfg_scale: float | None = Field(default=None, ge=0)
    samplers: tuple[str, ...] | None = None
    schedulers: tuple[str, ...] | None = None


class _ModelIn(BaseModel):
    # The upstream records carry many more keys (config, download links, showcases...); the bots
    # need none of them.
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    baseline: str = Field(min_length=1)
    nsfw: bool = False
    inpainting: bool = False
    requirements: _RequirementsIn = _RequirementsIn()
    features_not_supported: tuple[str, ...] = ()
    style: str | None = None
    trigger: tuple[str, ...] = ()

    @field_validator("requirements", "features_not_supported", "trigger", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: Any) -> Any:
        if value is None:
            return {} if info.field_name == "requirements" else ()
        return value


def parse_model_reference(data: Any, origin: str) -> ModelReference:
    """A reference from the decoded JSON (name -> record); bad records are skipped and logged.

    A record without its own ``name`` takes its key. Unknown requirement keys are logged and
    ignored: the horde may add some before we know what they mean.
    """
    models: dict[str, ModelInfo] = {}
    if not isinstance(data, dict):
        log.warning("model reference (%s) is not a JSON object; ignored", origin)
        return ModelReference(models, origin)
    seen: set[str] = set()
    for key, raw in data.items():
        record = {"name": key, **raw} if isinstance(raw, dict) else raw
        try:
            entry = _ModelIn.model_validate(record)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "record"
            log.warning("model %r skipped: %s: %s", key, where, err["msg"])
            continue
        req = entry.requirements
        if req.model_extra:
            log.warning(
                "model %r: ignoring requirement(s) %s", key, ", ".join(sorted(req.model_extra))
            )
        if entry.name.casefold() in seen:
            log.warning("model %r skipped: duplicate name", key)
            continue
        seen.add(entry.name.casefold())
        models[entry.name] = ModelInfo(
            name=entry.name,
            baseline=entry.baseline,
            nsfw=entry.nsfw,
            inpainting=entry.inpainting,
            requirements=Requirements(
                clip_skip=req.clip_skip,
                min_steps=req.min_steps,
                max_steps=req.max_steps,
                cfg_scale=req.cfg_scale,
                min_cfg_scale=req.min_cfg_scale,
                max_cfg_scale=req.max_cfg_scale,
                samplers=req.samplers,
                schedulers=req.schedulers,
            ),
            features_not_supported=entry.features_not_supported,
            style=entry.style,
            trigger=entry.trigger,
        )
    return ModelReference(models, origin)


def load_model_reference(source: str, cache_dir: Path, refresh_seconds: int) -> ModelReference:
    """The reference from ``source`` (an URL or a local file or folder), else our own fallback.

    For an URL the order is fresh cache, network, stale cache (see ``styles.source.read``);
    the cache file is ``cache_dir/stable_diffusion.json``.
    """
    got = read(source, REFERENCE_FILE, cache_dir, refresh_seconds)
    if got is not None:
        try:
            data = json.loads(got.data)
        except ValueError:
            log.warning("model reference from %s is not valid JSON", got.origin)
        else:
            reference = parse_model_reference(data, got.origin)
            if len(reference):
                log.info("model reference: %d models from %s", len(reference), reference.origin)
                return reference
    log.warning("model reference unavailable from %s; using the bundled fallback", source)
    return fallback_model_reference()


@cache
def fallback_model_reference() -> ModelReference:
    """Our own small reference, bundled, for when nothing else can be had."""
    text = (resources.files("core") / FALLBACK_FILE).read_text(encoding="utf-8")
    return parse_model_reference(json.loads(text), "fallback")


# --- rules per baseline ------------------------------------------------------------------------

_NATIVE_SIDE: Mapping[str, int] = MappingProxyType(
    {
        Baseline.SD1: 512,
        Baseline.SD2: 768,
        Baseline.SDXL: 1024,
        Baseline.CASCADE: 1024,
        Baseline.FLUX: 1024,
    }
)


def native_side(baseline: str) -> int:
    """The square side a baseline was trained at; unknown baselines count as SD1 (512)."""
    return _NATIVE_SIDE.get(baseline, 512)


def default_size(baseline: str) -> tuple[int, int]:
    """(width, height) when neither the user nor the style chose one: the native square.

    The horde's own default is 512x512 whatever the model; an SDXL, Cascade or Flux model at
    512x512 gives poor images, so the bots default to 1024x1024 for those.
    """
    side = native_side(baseline)
    return side, side


def min_pixels(baseline: str) -> int:
    """The fewest pixels (width x height) a request on ``baseline`` should have.

    Rule: half the native area. For SDXL, Cascade and Flux (native 1024x1024) that is 524 288,
    which keeps every aspect bucket those models are used with (832x1216, 1344x768, 1024x576,
    768x1024 ... all appear in upstream styles) while refusing the 512x512 that would otherwise
    come from the horde default. A hard 1024x1024 floor would reject those buckets. SD1 gets
    131 072 (512x256), SD2 294 912. The payload builder enforces it.
    """
    return native_side(baseline) ** 2 // 2


# --- LCM ---------------------------------------------------------------------------------------

LCM_SAMPLER = "lcm"
LCM_STEPS = 4
LCM_CFG_SCALE = 1.5

# CivitAI *version* ids (is_version=True) of LCM LoRAs the horde knows. Sources:
# * Haidra-Org/hordelib tests/test_horde_lcm.py: "225222" is "LCM for SD 1.5" (sampler lcm, cfg
#   1.5, 3 steps) and "268475" is "LCM Turbo" run on AlbedoBase XL (SDXL) with sampler lcm, cfg
#   1.5, 4 steps;
# * Haidra-Org/AI-Horde horde/consts.py KNOWN_LCM_LORA_VERSIONS lists both, so the horde treats
#   requests carrying them as LCM (fewer steps, cheaper).
_LCM_LORAS: Mapping[str, tuple[str, bool]] = MappingProxyType(
    {
        Baseline.SD1: ("225222", True),
        Baseline.SDXL: ("268475", True),
    }
)


def lcm_lora(baseline: str) -> tuple[str, bool] | None:
    """(CivitAI name, is_version) of the LCM LoRA for ``baseline``; None where there is none.

    Only SD1.5 and SDXL have one; SD2, Cascade and Flux requests cannot use ``--lcm``.
    """
    return _LCM_LORAS.get(baseline)
