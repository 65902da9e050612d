"""The style library: styles, categories and per-baseline enhancements (AI-Horde-Styles format).

Upstream (Haidra-Org/AI-Horde-Styles) keeps three JSON files: ``styles.json`` (name -> style),
``categories.json`` (name -> list of style or category names) and ``enhancements.json``
(model baseline -> extra LoRAs/TIs). This module turns them into immutable values. Parsing is
forgiving by design: the files are edited by hand upstream, so one bad entry is skipped with a
logged warning instead of taking the whole library down. Loading falls back to a small library
of our own (``styles/data/``) when neither the network, the cache nor a local folder can help.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from styles.source import read

log = logging.getLogger(__name__)

STYLES_FILE = "styles.json"
CATEGORIES_FILE = "categories.json"
ENHANCEMENTS_FILE = "enhancements.json"

# A style value the payload builder may copy into a horde request as it is.
ExtraValue = bool | int | float | str | tuple[str, ...]

# Keys a style may carry beyond the ones modelled on ``Style``: each is a field of the horde's
# ``GenerationInput`` or ``GenerationParams`` (see core/horde/wire.py; styles cannot import core).
# Left out on purpose: what the user or the bot decides per request (n, seed, workers, webhook,
# source images, dry_run) and what the style already names (prompt, models, loras, tis).
EXTRA_REQUEST_KEYS: frozenset[str] = frozenset(
    {
        # params
        "denoising_strength",
        "hires_fix_denoising_strength",
        "seed_variation",
        "post_processing",
        "tiling",
        "facefixer_strength",
        "transparent",
        # top level
        "nsfw",
        "censor_nsfw",
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


@dataclass(frozen=True, slots=True)
class StyleLora:
    """A LoRA a style asks for: a CivitAI model id, or a version id when ``is_version``."""

    name: str
    model: float = 1.0
    clip: float = 1.0
    inject_trigger: str | None = None
    is_version: bool = False


@dataclass(frozen=True, slots=True)
class StyleTI:
    """A textual inversion a style asks for; ``inject_ti`` lets the worker place it."""

    name: str
    inject_ti: Literal["prompt", "negprompt"] | None = None
    strength: float = 1.0


@dataclass(frozen=True, slots=True)
class Style:
    """One style: a prompt template with ``{p}``/``{np}`` plus the generation settings it fixes.

    ``None`` means the style leaves that setting to the user, the model reference or the default.
    ``extras`` holds other valid horde request fields the file set, as (key, value) pairs.
    """

    name: str
    prompt: str
    model: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    sampler_name: str | None = None
    karras: bool | None = None
    clip_skip: int | None = None
    hires_fix: bool | None = None
    loras: tuple[StyleLora, ...] = ()
    tis: tuple[StyleTI, ...] = ()
    enhance: bool = False
    extras: tuple[tuple[str, ExtraValue], ...] = ()


@dataclass(frozen=True, slots=True)
class Enhancement:
    """What ``enhance: true`` adds to a style on one baseline (today: three negative TIs on SD1).

    Merged by the upstream rule: lists appended, scalars overwritten (``expand.merge_enhancement``).
    """

    loras: tuple[StyleLora, ...] = ()
    tis: tuple[StyleTI, ...] = ()
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    sampler_name: str | None = None
    karras: bool | None = None
    clip_skip: int | None = None
    hires_fix: bool | None = None


@dataclass(frozen=True)
class StyleLibrary:
    """Styles, categories and enhancements, looked up case-insensitively.

    Keys are case-folded names; ``Style.name`` keeps the spelling of the file. ``origin`` says
    where the data came from: ``upstream``, ``cache``, ``stale cache``, ``folder:<path>``,
    ``file:<path>`` or ``fallback``.
    """

    styles: Mapping[str, Style]
    categories: Mapping[str, tuple[str, ...]]
    enhancements: Mapping[str, Enhancement]
    origin: str
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "styles", MappingProxyType(dict(self.styles)))
        object.__setattr__(self, "categories", MappingProxyType(dict(self.categories)))
        object.__setattr__(self, "enhancements", MappingProxyType(dict(self.enhancements)))
        object.__setattr__(self, "_names", tuple(sorted({*self.styles, *self.categories})))

    def style(self, name: str) -> Style | None:
        """The style called ``name`` (any case), or ``None``."""
        return self.styles.get(name.strip().casefold())

    def is_category(self, name: str) -> bool:
        """Whether ``name`` (any case) is a category."""
        return name.strip().casefold() in self.categories

    def category(self, name: str) -> tuple[str, ...] | None:
        """The direct members of category ``name`` (any case), or ``None``."""
        return self.categories.get(name.strip().casefold())

    def names(self) -> list[str]:
        """Every style and category name, sorted, each once: for autocomplete and matching."""
        return list(self._names)

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` known names that look like ``name``, best first, for "did you mean"."""
        query = name.strip().casefold()
        found = difflib.get_close_matches(query, self._names, n=n, cutoff=0.6)
        if len(found) < n and query:
            # "punk" should still suggest "steampunk": fall back to names containing the query.
            found += [x for x in self._names if query in x and x not in found][: n - len(found)]
        return found


# --- parsing -----------------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _LoraIn(_Entry):
    name: str = Field(min_length=1, max_length=255)
    model: float | None = Field(default=None, ge=-5, le=5)
    clip: float = Field(default=1.0, ge=-5, le=5)
    inject_trigger: str | None = Field(default=None, min_length=1, max_length=30)
    is_version: bool | None = None
    # Not part of the horde API, but five upstream LoRAs use it where ``model`` is meant (a
    # LoRA's "weight" in A1111 terms is its unet strength). Dropping it would silently run them
    # at full strength, so it becomes ``model`` unless ``model`` is given too.
    weight: float | None = Field(default=None, ge=-5, le=5)

    @field_validator("name", mode="before")
    @classmethod
    def _name_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def to_value(self) -> StyleLora:
        strength = self.model if self.model is not None else self.weight
        return StyleLora(
            name=self.name,
            model=1.0 if strength is None else strength,
            clip=self.clip,
            inject_trigger=self.inject_trigger,
            is_version=bool(self.is_version),
        )


class _TIIn(_Entry):
    name: str = Field(min_length=1, max_length=255)
    inject_ti: Literal["prompt", "negprompt"] | None = None
    strength: float = Field(default=1.0, ge=-5, le=5)

    @field_validator("name", mode="before")
    @classmethod
    def _name_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def to_value(self) -> StyleTI:
        return StyleTI(name=self.name, inject_ti=self.inject_ti, strength=self.strength)


class _SettingsIn(_Entry):
    steps: int | None = Field(default=None, ge=1, le=500)
    cfg_scale: float | None = Field(default=None, ge=0, le=100)
    width: int | None = Field(default=None, ge=64, le=4096, multiple_of=64)
    height: int | None = Field(default=None, ge=64, le=4096, multiple_of=64)
    sampler_name: str | None = Field(default=None, min_length=1)
    karras: bool | None = None
    clip_skip: int | None = Field(default=None, ge=1, le=12)
    hires_fix: bool | None = None
    loras: list[_LoraIn] = Field(default_factory=list)
    tis: list[_TIIn] = Field(default_factory=list)


class _StyleIn(_SettingsIn):
    prompt: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    enhance: bool = False

    @field_validator("prompt")
    @classmethod
    def _has_user_prompt(cls, value: str) -> str:
        if "{p}" not in value:
            raise ValueError("the prompt template has no {p}, so the user's prompt would be lost")
        return value


# Nested keys the data carries but the API does not take; dropped without a warning.
_QUIET_KEYS = {"id"}


def _extra_value(value: Any) -> ExtraValue | None:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _warn_nested(where: str, entries: list[_LoraIn] | list[_TIIn]) -> None:
    for entry in entries:
        unknown = set(entry.model_extra or {}) - _QUIET_KEYS
        if unknown:
            log.warning("%s: ignoring unknown key(s) %s", where, ", ".join(sorted(unknown)))


def _parse_style(name: str, raw: Any) -> Style | None:
    try:
        entry = _StyleIn.model_validate(raw)
    except ValidationError as exc:
        log.warning("style %r skipped: %s", name, _first_error(exc))
        return None
    extras: list[tuple[str, ExtraValue]] = []
    for key, value in (entry.model_extra or {}).items():
        converted = _extra_value(value) if key in EXTRA_REQUEST_KEYS else None
        if converted is None:
            log.warning("style %r: ignoring key %r (not a horde request field we take)", name, key)
            continue
        extras.append((key, converted))
    _warn_nested(f"style {name!r} loras", entry.loras)
    _warn_nested(f"style {name!r} tis", entry.tis)
    return Style(
        name=name,
        prompt=entry.prompt,
        model=entry.model,
        steps=entry.steps,
        cfg_scale=entry.cfg_scale,
        width=entry.width,
        height=entry.height,
        sampler_name=entry.sampler_name,
        karras=entry.karras,
        clip_skip=entry.clip_skip,
        hires_fix=entry.hires_fix,
        loras=tuple(x.to_value() for x in entry.loras),
        tis=tuple(x.to_value() for x in entry.tis),
        enhance=entry.enhance,
        extras=tuple(extras),
    )


def _parse_enhancement(baseline: str, raw: Any) -> Enhancement | None:
    try:
        entry = _SettingsIn.model_validate(raw)
    except ValidationError as exc:
        log.warning("enhancement for %r skipped: %s", baseline, _first_error(exc))
        return None
    if entry.model_extra:
        log.warning(
            "enhancement for %r: ignoring key(s) %s", baseline, ", ".join(sorted(entry.model_extra))
        )
    _warn_nested(f"enhancement {baseline!r} loras", entry.loras)
    _warn_nested(f"enhancement {baseline!r} tis", entry.tis)
    return Enhancement(
        loras=tuple(x.to_value() for x in entry.loras),
        tis=tuple(x.to_value() for x in entry.tis),
        steps=entry.steps,
        cfg_scale=entry.cfg_scale,
        width=entry.width,
        height=entry.height,
        sampler_name=entry.sampler_name,
        karras=entry.karras,
        clip_skip=entry.clip_skip,
        hires_fix=entry.hires_fix,
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "entry"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def _as_object(data: Any, what: str) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if data is not None:
        log.warning("%s is not a JSON object; ignored", what)
    return {}


def parse_library(
    styles_json: Any, categories_json: Any, enhancements_json: Any, origin: str
) -> StyleLibrary:
    """Build a library from the three decoded JSON documents; bad entries are skipped and logged.

    Names are case-folded, so lookups ignore case; a name that occurs twice after folding keeps
    its first entry. Category members are kept even when they name nothing (expansion skips them),
    because upstream sometimes lists a style a day before it lands.
    """
    styles: dict[str, Style] = {}
    for name, raw in _as_object(styles_json, STYLES_FILE).items():
        key = name.strip().casefold()
        if not key or key in styles:
            log.warning("style %r skipped: empty or duplicate name", name)
            continue
        style = _parse_style(name.strip(), raw)
        if style is not None:
            styles[key] = style

    categories: dict[str, tuple[str, ...]] = {}
    for name, raw in _as_object(categories_json, CATEGORIES_FILE).items():
        key = name.strip().casefold()
        if not key or key in categories:
            log.warning("category %r skipped: empty or duplicate name", name)
            continue
        if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
            log.warning("category %r skipped: not a non-empty list of names", name)
            continue
        categories[key] = tuple(dict.fromkeys(m.strip().casefold() for m in raw))

    enhancements: dict[str, Enhancement] = {}
    for baseline, raw in _as_object(enhancements_json, ENHANCEMENTS_FILE).items():
        enhancement = _parse_enhancement(baseline, raw)
        if enhancement is not None:
            enhancements[baseline] = enhancement

    return StyleLibrary(
        styles=styles, categories=categories, enhancements=enhancements, origin=origin
    )


# --- loading -----------------------------------------------------------------------------------


def _decode(data: bytes | None, what: str) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        log.warning("%s is not valid JSON; ignored", what)
        return None


def load_library(source: str, cache_dir: Path, refresh_seconds: int) -> StyleLibrary:
    """The library from ``source`` (an URL base or a local folder), else our own fallback.

    For an URL the order is: fresh cache, network, stale cache; see ``styles.source.read``.
    ``styles.json`` and ``categories.json`` are required; a missing ``enhancements.json`` only
    means ``enhance`` adds nothing. When the required files cannot be had, or hold no valid style,
    the bundled library is used and a warning says so.
    """
    fetched = {
        name: read(source, name, cache_dir, refresh_seconds)
        for name in (STYLES_FILE, CATEGORIES_FILE, ENHANCEMENTS_FILE)
    }
    styles_json, categories_json, enhancements_json = (
        _decode(got.data if got else None, name) for name, got in fetched.items()
    )
    first = fetched[STYLES_FILE]
    if styles_json is not None and categories_json is not None and first is not None:
        library = parse_library(styles_json, categories_json, enhancements_json, first.origin)
        if library.styles:
            log.info(
                "style library: %d styles, %d categories from %s",
                len(library.styles),
                len(library.categories),
                library.origin,
            )
            return library
    log.warning("style library unavailable from %s; using the bundled fallback", source)
    return fallback_library()


@cache
def fallback_library() -> StyleLibrary:
    """Our own small library in ``styles/data/``, used when nothing else can be had."""
    folder = resources.files("styles") / "data"
    styles_json, categories_json, enhancements_json = (
        json.loads((folder / name).read_text(encoding="utf-8"))
        for name in (STYLES_FILE, CATEGORIES_FILE, ENHANCEMENTS_FILE)
    )
    return parse_library(styles_json, categories_json, enhancements_json, "fallback")
