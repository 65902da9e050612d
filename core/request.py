"""The request object: what a user asked for, before styles, models and policy are applied.

Text (``draw me ... --steps 20``) and structured input (Discord options) both become a
``RequestSpec``, so two platforms asking for the same thing produce equal values. Every setting
the user did not give is ``UNSET`` (not ``None``), which keeps the precedence explicit when the
payload builder fills it: user, then style, then model requirement, then default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from core.unset import UNSET, Unset

InjectTI = Literal["prompt", "negprompt"]
ArgValue = str | int


@dataclass(frozen=True, slots=True)
class LoraRef:
    """A LoRA the user asked for: a CivitAI model id or name, or a version id (``is_version``).

    ``strength`` becomes the horde's ``model`` (unet) strength; ``clip`` stays at its default.
    """

    name: str
    strength: float = 1.0
    is_version: bool = False


@dataclass(frozen=True, slots=True)
class TIRef:
    """A textual inversion the user asked for.

    ``inject`` is ``None`` when the prompt already references it (``embedding:ID``), so the worker
    must not add it a second time; ``--ti`` asks the worker to inject it.
    """

    name: str
    strength: float = 1.0
    inject: InjectTI | None = None


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One ``dream`` request as the user wrote it; ``UNSET`` marks what they left open.

    ``prompt`` is the positive text (never holds ``###``); ``negative`` the text to avoid from
    ``###`` and ``--no``; ``size`` and ``aspect`` are (width, height) pairs.
    """

    prompt: str
    negative: str | Unset = UNSET
    style: str | Unset = UNSET
    model: str | Unset = UNSET
    size: tuple[int, int] | Unset = UNSET
    aspect: tuple[int, int] | Unset = UNSET
    steps: int | Unset = UNSET
    cfg_scale: float | Unset = UNSET
    seed: str | Unset = UNSET
    n: int | Unset = UNSET
    sampler: str | Unset = UNSET
    loras: tuple[LoraRef, ...] = ()
    tis: tuple[TIRef, ...] = ()
    lcm: bool | Unset = UNSET
    karras: bool | Unset = UNSET
    clip_skip: int | Unset = UNSET
    hires_fix: bool | Unset = UNSET
    tiling: bool | Unset = UNSET
    # img2img: the address of the image to start from, and how far to move away from it.
    source_image: str | Unset = UNSET
    denoising_strength: float | Unset = UNSET
    nsfw: bool | Unset = UNSET
    # Which challenge this enters is the inbox's business; never part of the horde request.
    challenge: bool | Unset = UNSET


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """Any command as parsed: its name plus either a ``RequestSpec`` (dream) or its arguments.

    ``args`` maps option names to values for the commands other than ``dream`` (``user``,
    ``amount`` for ``transfer`` ...); options the user left out are absent.
    """

    command: str
    spec: RequestSpec | None = None
    args: Mapping[str, ArgValue] = field(default_factory=lambda: MappingProxyType({}))
