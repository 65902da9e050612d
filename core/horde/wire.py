"""Typed models of the AI Horde v2 image endpoints, shared by the client, embedded horde and worker.

Field names, limits and defaults follow the horde's contract. Where the documented (schema) default
and the effective (server) default differ, the models carry the *effective* default and clients send
those fields explicitly. Requests are validated strictly; responses tolerate unknown fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

KNOWN_SAMPLERS: tuple[str, ...] = (
    "k_lms",
    "k_heun",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
    "k_dpm_fast",
    "k_dpm_adaptive",
    "k_dpmpp_2s_a",
    "k_dpmpp_2m",
    "dpmsolver",
    "k_dpmpp_sde",
    "DDIM",
    "lcm",
)
KNOWN_POST_PROCESSORS: tuple[str, ...] = (
    "GFPGAN",
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "NMKD_Siax",
    "4x_AnimeSharp",
    "CodeFormers",
    "strip_background",
    "4xNomos8kSC",
    "4xLSDIRplus",
    "4xNomosWebPhoto_RealPLKSR",
    "4xNomos2_realplksr_dysample",
    "4xNomos2_hq_dat2",
    "2xModernSpanimationV1",
    "GFPGANv1.3",
    "RestoreFormer",
)
ANON_API_KEY = "0000000000"
PROMPT_SEPARATOR = "###"
MAX_LORAS = 5
MAX_TIS = 20
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 3072, 64
MAX_STEPS = 500
MAX_N = 20
REQUEST_LIFETIME_S = 20 * 60

Sampler = Literal[
    "k_lms",
    "k_heun",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
    "k_dpm_fast",
    "k_dpm_adaptive",
    "k_dpmpp_2s_a",
    "k_dpmpp_2m",
    "dpmsolver",
    "k_dpmpp_sde",
    "DDIM",
    "lcm",
]
SourceProcessing = Literal["img2img", "inpainting", "outpainting", "remix"]
SubmitState = Literal["ok", "censored", "faulted", "csam"]
MetadataType = Literal[
    "lora",
    "ti",
    "censorship",
    "source_image",
    "source_mask",
    "extra_source_images",
    "batch_index",
    "information",
    "aesthetic_score",
]
MetadataValue = Literal[
    "download_failed", "parse_failed", "baseline_mismatch", "csam", "nsfw", "see_ref"
]


class _Request(BaseModel):
    """A body we send or accept: unknown fields are errors, values are checked."""

    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    """A body we read: the horde may add fields at any time."""

    model_config = ConfigDict(extra="ignore")


# ---- client side: POST /v2/generate/async ------------------------------------------------


class LoraSpec(_Request):
    """One LoRA in ``params.loras``; ``name`` is a CivitAI model id, a version id or a name."""

    name: str = Field(min_length=1, max_length=255)
    model: float = Field(default=1.0, ge=-5, le=5)
    clip: float = Field(default=1.0, ge=-5, le=5)
    inject_trigger: str | None = Field(default=None, min_length=1, max_length=30)
    is_version: bool = False

    @field_validator("is_version")
    @classmethod
    def _version_is_numeric(cls, value: bool, info: Any) -> bool:
        if value and not str(info.data.get("name", "")).isdigit():
            raise ValueError("is_version needs a numeric name (BadLoraVersion)")
        return value


class TISpec(_Request):
    """One textual inversion in ``params.tis``."""

    name: str = Field(min_length=1, max_length=255)
    inject_ti: Literal["prompt", "negprompt"] | None = None
    strength: float = Field(default=1.0, ge=-5, le=5)


class GenerationParams(_Request):
    """``params`` of an image request (``ModelGenerationInputStable``)."""

    sampler_name: Sampler = "k_euler_a"
    cfg_scale: float = Field(default=5.0, ge=0, le=100)
    denoising_strength: float | None = Field(default=None, ge=0.01, le=1.0)
    hires_fix_denoising_strength: float | None = Field(default=None, ge=0.01, le=1.0)
    height: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIDE_STEP)
    width: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIDE_STEP)
    seed: str | None = None
    seed_variation: int | None = Field(default=None, ge=1, le=1000)
    post_processing: list[str] = Field(default_factory=list)
    karras: bool = True
    tiling: bool = False
    hires_fix: bool = False
    clip_skip: int = Field(default=1, ge=1, le=12)
    facefixer_strength: float | None = Field(default=None, ge=0, le=1)
    loras: list[LoraSpec] = Field(default_factory=list, max_length=MAX_LORAS)
    tis: list[TISpec] = Field(default_factory=list, max_length=MAX_TIS)
    transparent: bool = False
    steps: int = Field(default=30, ge=1, le=MAX_STEPS)
    n: int = Field(default=1, ge=1, le=MAX_N)

    @field_validator("cfg_scale")
    @classmethod
    def _two_decimals(cls, value: float) -> float:
        if round(value, 2) != value:
            raise ValueError("cfg_scale takes at most 2 decimals (BadCFGDecimals)")
        return value

    @field_validator("post_processing")
    @classmethod
    def _known_post_processors(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in KNOWN_POST_PROCESSORS]
        if unknown:
            raise ValueError(f"unknown post-processors {unknown}")
        if len(set(value)) != len(value):
            raise ValueError("post_processing entries must be unique")
        return value


class GenerationInput(_Request):
    """The body of ``POST /v2/generate/async`` (``GenerationInputStable``), effective defaults."""

    prompt: str = Field(min_length=1)
    params: GenerationParams = Field(default_factory=GenerationParams)
    nsfw: bool = True
    censor_nsfw: bool = True
    trusted_workers: bool = False
    validated_backends: bool = False
    slow_workers: bool = True
    extra_slow_workers: bool = False
    workers: list[str] = Field(default_factory=list)
    worker_blacklist: bool = False
    models: list[str] = Field(default_factory=lambda: ["stable_diffusion"])
    source_image: str | None = None
    source_processing: SourceProcessing = "img2img"
    source_mask: str | None = None
    r2: bool = True
    shared: bool = False
    replacement_filter: bool = True
    dry_run: bool = False
    disable_batching: bool = False
    allow_downgrade: bool = False
    webhook: str | None = Field(default=None, min_length=10, max_length=1024)
    style: str | None = Field(default=None, min_length=3, max_length=1024)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body to send: absent optionals are left out, everything else explicit."""
        return self.model_dump(mode="json", exclude_none=True)


class WarningItem(_Response):
    """A non-fatal note the horde attaches to an accepted request."""

    code: str = ""
    message: str = ""


class RequestAsync(_Response):
    """202 answer to ``generate/async``: the request id and per-image base kudos."""

    id: str
    kudos: float = 0.0
    message: str | None = None
    warnings: list[WarningItem] = Field(default_factory=list)


class DryRunResponse(_Response):
    """200 answer to a ``dry_run`` request: what it would cost."""

    kudos: float


# ---- client side: check / status / cancel ------------------------------------------------


class GenMetadata(BaseModel):
    """One ``gen_metadata`` entry: what a worker wants the requester to know about an image."""

    model_config = ConfigDict(extra="ignore")

    type: MetadataType
    value: MetadataValue
    ref: str | None = Field(default=None, max_length=255)


class RequestStatusCheck(_Response):
    """``GET /v2/generate/check/{id}``: progress without images."""

    finished: int = 0
    processing: int = 0
    restarted: int = 0
    waiting: int = 0
    done: bool = False
    faulted: bool = False
    wait_time: int = 0
    queue_position: int = 0
    kudos: float = 0.0
    is_possible: bool = True


class Generation(_Response):
    """One finished image in a status answer; ``img`` is a URL (r2) or base64 webp."""

    img: str
    seed: str
    id: str
    censored: bool = False
    worker_id: str = ""
    worker_name: str = ""
    model: str = ""
    state: str = "ok"
    gen_metadata: list[GenMetadata] = Field(default_factory=list)


class RequestStatusStable(RequestStatusCheck):
    """``GET|DELETE /v2/generate/status/{id}``: progress plus the finished images."""

    generations: list[Generation] = Field(default_factory=list)
    shared: bool = False


# ---- worker side: pop / submit ----------------------------------------------------------


class PopInput(_Request):
    """``POST /v2/generate/pop`` body (``PopInputStable``); capability flags are sent explicitly."""

    name: str = Field(min_length=1)
    models: list[str] = Field(default_factory=lambda: ["stable_diffusion"])
    bridge_agent: str = Field(default="unknown:0:unknown", max_length=1000)
    nsfw: bool = True
    amount: int = Field(default=1, ge=1, le=20)
    threads: int = Field(default=1, ge=1, le=50)
    max_pixels: int = 262144
    blacklist: list[str] = Field(default_factory=list)
    priority_usernames: list[str] = Field(default_factory=list)
    require_upfront_kudos: bool = False
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_unsafe_ipaddr: bool = True
    allow_post_processing: bool = True
    allow_controlnet: bool = False
    allow_sdxl_controlnet: bool = False
    allow_lora: bool = False
    limit_max_steps: bool = False
    extra_slow_worker: bool = False


class PopPayload(_Response):
    """The job's generation settings as a worker receives them (``payload`` of a pop answer)."""

    prompt: str
    ddim_steps: int = 30
    n_iter: int = 1
    seed: int | str | None = None
    sampler_name: str = "k_euler_a"
    cfg_scale: float = 5.0
    width: int = 512
    height: int = 512
    karras: bool = True
    tiling: bool = False
    hires_fix: bool = False
    hires_fix_denoising_strength: float | None = None
    clip_skip: int = 1
    denoising_strength: float | None = None
    post_processing: list[str] = Field(default_factory=list)
    facefixer_strength: float | None = None
    loras: list[LoraSpec] = Field(default_factory=list)
    tis: list[TISpec] = Field(default_factory=list)
    use_nsfw_censor: bool = False
    batch_size: int = 1
    transparent: bool = False


class PopResponse(_Response):
    """A pop answer: a job (``id`` set) or nothing to do (``id`` null, ``skipped`` counts)."""

    id: str | None = None
    ids: list[str] = Field(default_factory=list)
    model: str | None = None
    payload: PopPayload | None = None
    ttl: int | None = None
    skipped: dict[str, float] = Field(default_factory=dict)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    source_image: str | None = None
    source_processing: SourceProcessing = "img2img"
    source_mask: str | None = None
    r2_upload: str | None = None
    r2_uploads: list[str] = Field(default_factory=list)


class SubmitInput(_Request):
    """``POST /v2/generate/submit``: one finished (or faulted) job."""

    id: str
    generation: str
    state: SubmitState = "ok"
    seed: int
    censored: bool = False
    gen_metadata: list[GenMetadata] = Field(default_factory=list, max_length=50)


class SubmitResponse(_Response):
    """What the worker earned for a submitted job."""

    reward: float = 0.0


# ---- accounts and status -----------------------------------------------------------------


class UserDetails(_Response):
    """``GET /v2/find_user``: the account behind an API key."""

    username: str
    id: int
    kudos: float = 0.0
    concurrency: int = 30
    worker_count: int = 0
    worker_ids: list[str] = Field(default_factory=list)
    trusted: bool = False
    moderator: bool = False
    pseudonymous: bool = False


class KudosTransferInput(_Request):
    """``POST /v2/kudos/transfer`` body; the target is ``alias#id`` or a shared key id."""

    username: str = Field(min_length=1)
    amount: int = 100


class KudosTransferResponse(_Response):
    """How many kudos moved."""

    transferred: float


class ActiveModel(_Response):
    """One row of ``GET /v2/status/models``."""

    name: str
    count: int = 0
    performance: float = 0.0
    queued: float = 0.0
    jobs: float = 0.0
    eta: int = 0
    type: str = "image"


class Heartbeat(_Response):
    """``GET /v2/status/heartbeat``."""

    message: str = "OK"
    version: str = ""


class ErrorBody(_Response):
    """A horde error: a message and a return code (``rc``); schema errors carry ``errors``."""

    message: str
    rc: str | None = None
    errors: dict[str, str] | None = None


class WorkerDetails(_Response):
    """One worker of ``GET /v2/workers`` (``/v2/workers/{id}``): who serves, and what it earned."""

    id: str
    name: str
    type: str = "image"
    online: bool = False
    requests_fulfilled: int = 0
    kudos_rewards: float = 0.0
    uptime: int = 0
    models: list[str] = Field(default_factory=list)
    nsfw: bool = False
    max_pixels: int = 0
    threads: int = 1
    trusted: bool = False
    bridge_agent: str = ""
    img2img: bool | None = None
    painting: bool | None = None
    lora: bool | None = None
