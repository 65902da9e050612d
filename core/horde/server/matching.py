"""Which queued request a popping worker may take: the horde's pop filters as pure functions.

Each filter that rejects a request names the ``skipped`` counter it feeds, with the horde's keys
(``models``, ``max_pixels``, ``nsfw``, ``blacklist``, ``post-processing`` …).
"""

from __future__ import annotations

from collections.abc import Iterable

from core.horde.wire import GenerationInput, PopInput

MAX_BLACKLIST_WORDS = 200
MAX_BLACKLIST_WORD = 15
DEFAULT_MODELS = ("stable_diffusion",)


def worker_models(worker: PopInput) -> list[str]:
    """The models a worker serves; the horde reads an empty list as the default model."""
    return list(worker.models[:300]) or list(DEFAULT_MODELS)


def skip_reason(
    request: GenerationInput,
    worker: PopInput,
    *,
    worker_id: str,
    worker_trusted: bool,
    requester_kudos: float,
    requester_anonymous: bool,
) -> str | None:
    """The ``skipped`` key explaining why this worker cannot take this request, or None."""
    params = request.params
    if request.models and not set(request.models) & set(worker_models(worker)):
        return "models"
    if request.workers and (worker_id in request.workers) == request.worker_blacklist:
        return "worker_id"
    if params.width * params.height > worker.max_pixels:
        return "max_pixels"
    if request.nsfw and not worker.nsfw:
        return "nsfw"
    if request.trusted_workers and not worker_trusted:
        return "untrusted"
    if worker.extra_slow_worker and not request.extra_slow_workers:
        return "performance"
    if worker.require_upfront_kudos and (requester_anonymous or requester_kudos <= 0):
        return "kudos"
    if _blacklisted(request.prompt, worker.blacklist):
        return "blacklist"
    if request.source_image is not None:
        if request.source_processing in ("inpainting", "outpainting"):
            if not worker.allow_painting:
                return "painting"
        elif not worker.allow_img2img:
            return "img2img"
    if params.post_processing and not worker.allow_post_processing:
        return "post-processing"
    if params.loras and not worker.allow_lora:
        return "lora"
    return None


def _blacklisted(prompt: str, words: Iterable[str]) -> bool:
    lowered = prompt.lower()
    for word in list(words)[:MAX_BLACKLIST_WORDS]:
        cut = word[:MAX_BLACKLIST_WORD].strip().lower()
        if cut and cut in lowered:
            return True
    return False


def pick_model(request_models: list[str], worker: PopInput) -> str:
    """The model the worker should use: the request's first that it serves, else its first."""
    served = worker_models(worker)
    for name in request_models:
        if name in served:
            return name
    return served[0]


def serves(request_models: list[str], worker: PopInput) -> bool:
    """Whether the worker has one of the requested models (any model when none requested)."""
    return not request_models or bool(set(request_models) & set(worker_models(worker)))
