"""A popped job as the worker holds it, and the submit bodies that may answer it.

Everything that ties an image to a job id lives here, so the rule "an image goes out only under
the id it was made for" is checked in one place: ``check_result`` proves that an engine result
answers exactly the popped job's ids, in order, and ``image_submit`` / ``fault_submits`` build the
only submit bodies the loop sends. The checks raise (``ResultMismatch``) rather than ``assert``:
they must also hold under ``python -O``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.horde.wire import (
    GenMetadata,
    PopPayload,
    PopResponse,
    SubmitInput,
    SubmitState,
)
from worker_node.assets import Asset, AssetError
from worker_node.engine import JobAssets, JobImage, JobResult, image_seeds

FAULTED_GENERATION = "faulted"
MAX_METADATA = 50


class ResultMismatch(Exception):
    """A result does not belong to the job it was about to be submitted for."""


def info(text: str) -> GenMetadata:
    """A free-text ``gen_metadata`` note (``information`` / ``see_ref``)."""
    return GenMetadata(type="information", value="see_ref", ref=one_line(text)[:255])


def one_line(text: str) -> str:
    """Text folded onto one line, for logs and notes."""
    return " ".join(text.split())


def job_ids(job: PopResponse) -> tuple[str, ...]:
    """The ids a pop asks images for (``ids``, or ``id`` alone from an older horde)."""
    if job.ids:
        return tuple(job.ids)
    return (job.id,) if job.id else ()


def check_result(job: PopResponse, result: JobResult) -> tuple[JobImage, ...]:
    """The result's images, after proving they answer exactly this job's ids, in order."""
    ids = job_ids(job)
    if result.job_id != job.id:
        raise ResultMismatch(f"a result for job {result.job_id} came back for job {job.id}")
    got = tuple(image.job_id for image in result.images)
    if got != ids:
        raise ResultMismatch(f"job {job.id}: images for ids {list(got)}, expected {list(ids)}")
    if any(not image.webp for image in result.images):
        raise ResultMismatch(f"job {job.id}: an image is empty")
    return result.images


@dataclass(frozen=True, slots=True)
class Prepared:
    """A job with its source image and assets fetched, or the reason it is refused.

    ``fetch_s`` is how long the fetching took (0 when there was nothing to fetch).
    """

    job: PopResponse
    assets: JobAssets = field(default_factory=JobAssets)
    source: bytes | None = None
    refusal: str | None = None
    refusal_notes: tuple[GenMetadata, ...] = ()
    fetch_s: float = 0.0


@dataclass(slots=True)
class HeldJob:
    """A popped job in this worker's hands, from its pop until its last submit was sent."""

    job: PopResponse
    ids: tuple[str, ...]
    seeds: tuple[int, ...]
    popped_at: float
    deadline: float | None
    ready: asyncio.Task[Prepared]

    @classmethod
    def popped(cls, job: PopResponse, now: float, ready: asyncio.Task[Prepared]) -> HeldJob:
        """Hold a pop: its ids, each id's seed (for a fault), and its deadline from ``ttl``."""
        ids = job_ids(job)
        seeds = image_seeds(job.payload.seed if job.payload else 0, len(ids))
        deadline = now + job.ttl if job.ttl else None
        return cls(job, ids, seeds, now, deadline, ready)

    @property
    def short(self) -> str:
        """The job id, shortened for logs."""
        return (self.job.id or "?")[:8]

    def upload_url(self, index: int) -> str | None:
        """The presigned link for ``ids[index]``, only when the pop ties it to that id."""
        if len(self.job.r2_uploads) == len(self.ids):
            return self.job.r2_uploads[index]
        if index == 0 and self.job.r2_upload and not self.job.r2_uploads:
            return self.job.r2_upload
        return None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One image ready to submit, for the id it answers."""

    job_id: str
    seed: int
    webp: bytes
    state: SubmitState
    metadata: tuple[GenMetadata, ...]


def image_submit(held: HeldJob, index: int, image: Outgoing, generation: str) -> SubmitInput:
    """The submit of image ``index``; refuses an image that is not for ``ids[index]``."""
    if index >= len(held.ids) or image.job_id != held.ids[index]:
        raise ResultMismatch(f"job {held.job.id}: image {index} is for {image.job_id}")
    return SubmitInput(
        id=image.job_id,
        generation=generation,
        state=image.state,
        seed=image.seed,
        censored=image.state == "censored",
        gen_metadata=list(image.metadata)[:MAX_METADATA],
    )


def fault_submits(
    held: HeldJob, reason: str, notes: Sequence[GenMetadata] = ()
) -> list[SubmitInput]:
    """One ``faulted`` submit per id of the job, the reason last in its ``gen_metadata``."""
    metadata = [*notes[: MAX_METADATA - 1], info(reason)]
    return [
        SubmitInput(
            id=job_id,
            generation=FAULTED_GENERATION,
            state="faulted",
            seed=seed,
            gen_metadata=metadata,
        )
        for job_id, seed in zip(held.ids, held.seeds, strict=True)
    ]


def base64_generation(webp: bytes) -> str:
    """An image as the ``generation`` field carries it without an upload link."""
    return base64.b64encode(webp).decode("ascii")


def job_assets(
    payload: PopPayload, fetched: Sequence[Asset | AssetError], notes: Sequence[GenMetadata] = ()
) -> tuple[JobAssets, list[AssetError]]:
    """The engine's view of a job's fetched LoRAs and TIs, and the ones that failed.

    ``fetched`` is ``AssetStore.prefetch``'s answer: the LoRAs in order, then the TIs. Failed
    assets are left out and noted in the assets' ``notes`` (for when the job runs without them).
    """
    loras = list(zip(payload.loras, fetched[: len(payload.loras)], strict=True))
    tis = list(zip(payload.tis, fetched[len(payload.loras) :], strict=True))
    failures = [r for r in fetched if isinstance(r, AssetError)]
    assets = JobAssets(
        loras=tuple((spec, r.path) for spec, r in loras if isinstance(r, Asset)),
        tis=tuple((spec, r.path) for spec, r in tis if isinstance(r, Asset)),
        trained_words=tuple((spec.name, r.triggers) for spec, r in loras if isinstance(r, Asset)),
        notes=(*notes, *(err.gen_metadata() for err in failures)),
    )
    return assets, failures
