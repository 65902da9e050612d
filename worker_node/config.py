"""The ``[worker]`` config section: what the worker serves, to which horde, and with what limits.

Validated at start with ``extra="forbid"``: an unknown key or a bad value is one clear error naming
the key and the file. Secrets come from environment variables named here, never from the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PUBLIC_HORDE = "https://aihorde.net/api"
EMBEDDED_HORDE = "embedded"
HORDE_URL_ENV = "HORDEBOT_WORKER_HORDE_URL"
BRIDGE_NAME = "hordebot-worker"


class WorkerConfigError(ValueError):
    """The worker's config is unusable; the message names the key and the file."""


class ServedModel(BaseModel):
    """One model on disk and the horde model name it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="horde model name, e.g. 'Deliberate'")
    path: str = Field(min_length=1, description="a single .safetensors file or a diffusers folder")
    baseline: Literal["stable diffusion 1", "stable_diffusion_xl"] = "stable diffusion 1"
    # Build a tiny random-weight model at `path` when it is missing (offline demos and tests).
    tiny: bool = False
    config: str | None = Field(
        default=None,
        description="for a single file: a diffusers folder of the same architecture (configs)",
    )

    @field_validator("path")
    @classmethod
    def _no_pickles(cls, value: str) -> str:
        if Path(value).suffix.lower() in {".ckpt", ".pt", ".pth", ".bin"}:
            raise ValueError(
                "only .safetensors files or diffusers folders are loaded, never pickles"
            )
        return value


class WorkerConfig(BaseModel):
    """The ``[worker]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Whether `hordebot run` starts this worker beside the bots.
    enabled: bool = False
    name: str = Field(default="hordebot-worker", min_length=1, max_length=100)
    api_key_env: str = "HORDEBOT_WORKER_API_KEY"
    horde_url: str = PUBLIC_HORDE
    models: tuple[ServedModel, ...] = ()
    max_power: int = Field(
        default=8, ge=1, le=128, description="max_pixels = max_power * 8 * 64 * 64"
    )
    max_threads: int = Field(default=1, ge=1, le=8)
    queue_size: int = Field(default=1, ge=0, le=8)
    nsfw: bool = False
    blacklist: tuple[str, ...] = ()
    allow_lora: bool = True
    allow_img2img: bool = True
    allow_post_processing: bool = False
    max_lora_cache_size: float = Field(
        default=10.0, gt=0, description="GB of LoRAs/TIs kept on disk"
    )
    cache_dir: str = "var/worker-cache"
    civitai_url: str = "https://civitai.com"
    civitai_token_env: str = "HORDEBOT_CIVITAI_TOKEN"  # noqa: S105 - the name of a variable
    safety_model: str | None = Field(
        default=None, description="a local transformers image-classification (NSFW) model folder"
    )
    safety_threshold: float = Field(default=0.5, gt=0, le=1)
    asset_failure: Literal["fault", "skip"] = Field(
        default="fault", description="a LoRA/TI that cannot be used faults the job, or is skipped"
    )
    pause_after_faults: int = Field(default=3, ge=1, le=100)
    fault_pause_s: float = Field(default=180.0, ge=0)
    stats_interval_s: float = Field(default=60.0, gt=0)
    device: str | None = None

    @field_validator("horde_url", "civitai_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # "embedded": the horde that `hordebot run` starts; it passes the URL at start.
        if value == EMBEDDED_HORDE:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @property
    def max_pixels(self) -> int:
        """The horde's pixel budget for one image, from ``max_power``."""
        return self.max_power * 8 * 64 * 64

    def api_key(self) -> str | None:
        """The worker's horde API key, from its environment variable."""
        return os.environ.get(self.api_key_env) or None

    def civitai_token(self) -> str | None:
        """The CivitAI token, from its environment variable."""
        return os.environ.get(self.civitai_token_env) or None


def parse_worker_config(section: object, origin: str = "<config>") -> WorkerConfig:
    """Validate a ``[worker]`` table; every problem is reported, each with its key.

    ``$HORDEBOT_WORKER_HORDE_URL`` replaces ``horde_url``: the composition root uses it to point a
    worker at the embedded horde, whose port is known only once it runs.
    """
    values = dict(section) if isinstance(section, dict) else section
    override = os.environ.get(HORDE_URL_ENV)
    if override and isinstance(values, dict):
        values["horde_url"] = override
    try:
        return WorkerConfig.model_validate(values or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"worker.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise WorkerConfigError(f"{origin}: {problems}") from None


def load_worker_config(path: str | Path) -> WorkerConfig:
    """Read the ``[worker]`` section of a TOML file."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkerConfigError(f"config file {file} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkerConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_worker_config(data.get("worker", {}), str(file))
