"""The worker loop: pop a job, fetch what it needs, infer off the event loop, hand the images in.

One ``WorkerLoop`` runs one worker name against one horde. Its parts, and why each is as it is:

* **Pop.** Every capability flag of the pop is sent explicitly (the horde's effective defaults
  differ from its documented ones), with an honest ``bridge_agent``
  ``hordebot-worker:<version>:<url>``. Painting, ControlNet and post-processing are advertised as
  off because the engine has none of them. A new bridge name gets only plain jobs and reduced
  rewards on the public horde until the horde lists it; borrowing another worker's name would be a
  lie about what this worker can do.
* **Look-ahead.** Up to ``threads + queue_size`` jobs are held. A job popped while another infers
  starts its LoRA/TI downloads (``AssetStore.prefetch``) and its source-image fetch at once, so
  they are usually done by the time the engine is free. A job is only popped ahead when the recent
  seconds per job say it will start well within its TTL, and a queued job whose TTL would run out
  before it finished is handed back (``faulted``) instead of being run for nothing.
* **Inference** runs off the event loop, which keeps popping, fetching and submitting meanwhile,
  on a dedicated executor whose threads live as long as the worker: torch keeps per-thread state
  (oneDNN kernel caches on the CPU, the current CUDA stream and device on a GPU), so every job
  runs on an already warm thread instead of whichever one asyncio's shared pool hands out. The
  engine unloads every LoRA and TI after each job.
* **One job's images never go out under another job's id.** The engine returns its images as a
  value tagged with the job's ids; ``check_result`` compares them with the popped job before
  anything is submitted (an explicit check, not an ``assert``, so it also runs under ``-O``), and
  a submit is only sent for an id this worker holds and has not yet answered.
* **Submit.** Images go to the pop's presigned upload link (``r2_uploads[k]`` for ``ids[k]``) and
  are then submitted as ``"R2"``; without a link, or when the upload fails, as base64 WebP. A job
  that fails is submitted ``faulted`` with the reason in ``gen_metadata``, so the horde re-queues
  it at once instead of waiting for its TTL. "Already submitted", "timed out" and "unknown job"
  answers are final and not retried.
* **Assets.** A LoRA or TI that cannot be used (not safetensors, hash mismatch, over the size cap,
  wrong baseline, not found) faults the job by default (``asset_failure = "fault"``): the
  requester asked for that LoRA, and an image without it is not what they pay for; the horde
  gives the job to another worker. ``"skip"`` runs the job without the asset and says so in
  ``gen_metadata``, as the horde's reference worker does.
* **NSFW censor.** A job with ``use_nsfw_censor`` has each image checked by the configured safety
  classifier; a flagged image is submitted ``censored`` with a black image in its place. With a
  classifier, a worker with ``nsfw = false`` checks every image. Without one the worker refuses
  censor jobs (``faulted`` at once, before any download) because the pop has no flag to decline
  them; see ``safety.py``.
* **Failures.** Horde errors on pop back off exponentially; a refusal that will not pass (bad key,
  name owned by someone else, rejected settings) stops the worker with ``WorkerStopped``. When
  ``pause_after_faults`` jobs in a row fail through the worker's own fault (an exception in
  inference or in the safety check, a result that does not match its job) pops pause for
  ``fault_pause_s``. Jobs refused for what they ask (assets, censor, TTL) do not count: a
  requester must not be able to pause workers.
* **Stopping.** ``stop()`` (the first SIGINT/SIGTERM) stops popping, lets the running job finish
  and submit, and faults the jobs still queued. ``stop(abort=True)`` (the second) also faults the
  running job at once; its thread finishes in the background and its images are dropped.
* **Metrics.** One log line per job (size, steps, seconds, it/s, reward) and a periodic summary
  (``stats.py``): it/s, seconds per job, jobs done and faulted, kudos earned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.horde.client import PROJECT_URL, package_version
from core.horde.errors import (
    AbortedGen,
    AnonForbiddenWorker,
    BadRequest,
    DuplicateGen,
    HordeError,
    InvalidJobID,
    Unauthorized,
    WrongCredentials,
)
from core.horde.wire import (
    GenMetadata,
    LoraSpec,
    PopInput,
    PopResponse,
    SubmitInput,
    SubmitResponse,
    SubmitState,
    TISpec,
)
from worker_node.assets import Asset, AssetError
from worker_node.engine import JobAssets, JobError, JobImage, JobResult
from worker_node.images import blank_webp
from worker_node.jobs import (
    HeldJob,
    Outgoing,
    Prepared,
    ResultMismatch,
    base64_generation,
    check_result,
    fault_submits,
    image_submit,
    job_assets,
    one_line,
)
from worker_node.safety import SafetyCheck
from worker_node.stats import WorkerStats

log = logging.getLogger(__name__)

BRIDGE_NAME = "hordebot-worker"
# The horde's minimum job TTL; the look-ahead budget before the first pop tells us better.
DEFAULT_TTL_S = 150.0
# A job is popped ahead only if it should finish within this share of its TTL.
TTL_SHARE = 0.5

AssetFailurePolicy = Literal["fault", "skip"]

__all__ = [
    "AssetFetcher",
    "HordeApi",
    "JobRunner",
    "LoopSettings",
    "ResultMismatch",
    "WorkerLoop",
    "WorkerStopped",
    "bridge_agent",
    "check_result",
    "inference_executor",
]


def inference_executor(threads: int = 1) -> ThreadPoolExecutor:
    """The long-lived threads inference runs on (see the module docstring)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inference")


def bridge_agent() -> str:
    """This worker's honest ``bridge_agent``: ``hordebot-worker:<version>:<project url>``."""
    return f"{BRIDGE_NAME}:{package_version()}:{PROJECT_URL}"


class WorkerStopped(Exception):
    """The horde refuses this worker in a way waiting will not fix; one line for the operator."""


class HordeApi(Protocol):
    """The horde calls the loop makes (``core.horde.client.HordeClient`` provides them)."""

    async def pop(self, request: PopInput) -> PopResponse:
        """Ask for a job."""
        ...

    async def submit(self, result: SubmitInput) -> SubmitResponse:
        """Hand in one image (or a fault)."""
        ...

    async def upload_r2(self, url: str, data: bytes) -> None:
        """PUT image bytes to a presigned link."""
        ...

    async def fetch_image(self, image: str) -> bytes:
        """A source image's bytes from its link or base64."""
        ...


class JobRunner(Protocol):
    """The inference engine (``worker_node.engine.Engine``); blocking."""

    def run(
        self, job: PopResponse, assets: JobAssets | None = None, source_image: bytes | None = None
    ) -> JobResult:
        """Run one job and return its images."""
        ...


class AssetFetcher(Protocol):
    """Where LoRAs and TIs come from (``worker_node.assets.AssetStore``)."""

    async def prefetch(
        self, loras: Sequence[LoraSpec], tis: Sequence[TISpec], *, baseline: str | None = None
    ) -> list[Asset | AssetError]:
        """Every asset of a job, in order (LoRAs, then TIs), each an Asset or the reason not."""
        ...


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """What the loop advertises to the horde and how patient it is."""

    name: str
    models: tuple[str, ...]
    #: (horde model name, baseline) pairs; a LoRA for another baseline is refused before download.
    baselines: tuple[tuple[str, str], ...] = ()
    nsfw: bool = False
    max_pixels: int = 512 * 512
    blacklist: tuple[str, ...] = ()
    allow_img2img: bool = True
    allow_lora: bool = True
    threads: int = 1
    queue_size: int = 1
    asset_failure: AssetFailurePolicy = "fault"
    pop_interval_s: float = 1.0
    backoff_base_s: float = 1.0
    max_backoff_s: float = 60.0
    pause_after_faults: int = 3
    fault_pause_s: float = 180.0
    stats_interval_s: float = 60.0
    submit_attempts: int = 3
    bridge_agent: str = field(default_factory=bridge_agent)
    #: Random-weight demo models (``tiny = true``): they draw noise, which no censor could flag,
    #: so they serve censor jobs without a classifier.
    noise_models: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("a worker must serve at least one model")
        if self.threads < 1 or self.queue_size < 0 or self.submit_attempts < 1:
            raise ValueError("threads and submit_attempts must be >= 1, queue_size >= 0")
        if self.pause_after_faults < 1:
            raise ValueError("pause_after_faults must be >= 1")

    def pop_input(self) -> PopInput:
        """The pop body, every capability flag explicit."""
        return PopInput(
            name=self.name,
            models=list(self.models),
            bridge_agent=self.bridge_agent,
            nsfw=self.nsfw,
            amount=1,
            threads=self.threads,
            max_pixels=self.max_pixels,
            blacklist=list(self.blacklist),
            require_upfront_kudos=False,
            allow_img2img=self.allow_img2img,
            allow_painting=False,
            allow_unsafe_ipaddr=True,
            allow_post_processing=False,
            allow_controlnet=False,
            allow_sdxl_controlnet=False,
            allow_lora=self.allow_lora,
            limit_max_steps=False,
            extra_slow_worker=False,
        )


class _Aborted(Exception):
    """The worker was told to stop at once while this job was inferring."""


class WorkerLoop:
    """Pops, runs and submits jobs until stopped; see the module docstring for the rules."""

    def __init__(
        self,
        settings: LoopSettings,
        horde: HordeApi,
        engine: JobRunner,
        assets: AssetFetcher | None = None,
        safety: SafetyCheck | None = None,
        *,
        stats: WorkerStats | None = None,
        rng: random.Random | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.settings = settings
        self._horde = horde
        self._engine = engine
        self._assets = assets
        self._safety = safety
        self._stats = stats or WorkerStats()
        self._rng = rng or random.Random()
        self._pop_body = settings.pop_input()
        self._baselines = dict(settings.baselines)
        self._queue: asyncio.Queue[HeldJob | None] = asyncio.Queue()
        self._held = 0
        self._outstanding: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._aborting = asyncio.Event()
        self._room = asyncio.Event()
        self._failures_in_a_row = 0
        self._paused_until = 0.0
        self._last_ttl: float | None = None
        self._owns_executor = executor is None
        self._executor = executor or inference_executor(settings.threads)

    @property
    def stats(self) -> WorkerStats:
        """The session's counters."""
        return self._stats

    def stop(self, *, abort: bool = False) -> None:
        """Stop popping; finish the running jobs (``abort``: fault them); fault the queued ones."""
        self._stopping.set()
        if abort:
            self._aborting.set()

    # ---- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until ``stop()``; raises ``WorkerStopped`` when the horde refuses the worker."""
        s = self.settings
        log.info(
            "worker %r serving %s as %s (threads %d, queue %d, nsfw %s, lora %s, img2img %s)",
            s.name,
            ", ".join(s.models),
            s.bridge_agent,
            s.threads,
            s.queue_size,
            s.nsfw,
            s.allow_lora,
            s.allow_img2img,
        )
        runners = [
            asyncio.create_task(self._runner(), name=f"worker runner {n}") for n in range(s.threads)
        ]
        reporter = asyncio.create_task(self._report(), name="worker stats")
        try:
            await self._pop_loop()
        finally:
            self._stopping.set()
            await self._drain(runners)
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            if self._owns_executor:
                # An aborted job's thread may still run; it is not waited for.
                self._executor.shutdown(wait=False)
            log.info("worker %r stopped: %s", s.name, self._stats.snapshot().line())

    async def _drain(self, runners: list[asyncio.Task[None]]) -> None:
        while not self._queue.empty():
            held = self._queue.get_nowait()
            if held is not None:
                held.ready.cancel()
                self._fault(held, "the worker is shutting down", refused=True)
                self._release()
        for _ in runners:
            self._queue.put_nowait(None)
        await asyncio.gather(*runners)
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _pop_loop(self) -> None:
        errors_in_a_row = 0
        while not self._stopping.is_set():
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await self._sleep(pause)
                continue
            self._room.clear()
            if not self._has_room():
                await self._wait_for_room()
                continue
            try:
                popped = await self._horde.pop(self._pop_body)
            except HordeError as exc:
                if _fatal(exc):
                    raise WorkerStopped(
                        f"the horde refuses this worker: {exc.user_message} ({exc})"
                    ) from None
                errors_in_a_row += 1
                delay = self._backoff(errors_in_a_row)
                log.warning("pop failed (%s); next try in %.1f s", exc, delay)
                await self._sleep(delay)
                continue
            errors_in_a_row = 0
            if popped.id is None:
                if popped.skipped:
                    log.debug("no job for us; skipped %s", popped.skipped)
                await self._sleep(self.settings.pop_interval_s)
                continue
            self._take(popped)

    def _has_room(self) -> bool:
        s = self.settings
        if self._held >= s.threads + s.queue_size:
            return False
        if self._held < s.threads:
            return True
        expected = self._stats.expected_job_seconds()
        if expected is None:
            return True
        ahead = math.ceil((self._held - s.threads + 1) / s.threads)
        budget = TTL_SHARE * (self._last_ttl or DEFAULT_TTL_S)
        return expected * (ahead + 1) <= budget

    async def _wait_for_room(self) -> None:
        room = asyncio.ensure_future(self._room.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({room, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            room.cancel()
            stop.cancel()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the worker is told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, seconds))

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        ceiling = min(s.max_backoff_s, s.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling * self._rng.uniform(0.5, 1.0)

    def _release(self) -> None:
        self._held -= 1
        self._room.set()

    # ---- taking a job ----------------------------------------------------------------------------

    def _take(self, job: PopResponse) -> None:
        ready = asyncio.create_task(self._prepare(job), name=f"prepare {(job.id or '?')[:8]}")
        ready.add_done_callback(_consume)
        held = HeldJob.popped(job, time.monotonic(), ready)
        if job.ttl:
            self._last_ttl = float(job.ttl)
        self._outstanding.update(held.ids)
        self._held += 1
        self._stats.popped()
        payload = job.payload
        if payload is not None:
            log.info(
                "popped job %s: %s %dx%d, %d steps, %s, %d LoRA, %d TI%s%s (ttl %s s)",
                held.short,
                job.model,
                payload.width,
                payload.height,
                payload.ddim_steps,
                payload.sampler_name,
                len(payload.loras),
                len(payload.tis),
                ", img2img" if job.source_image else "",
                ", censor" if payload.use_nsfw_censor else "",
                job.ttl,
            )
        self._queue.put_nowait(held)

    def _refusal(self, job: PopResponse) -> str | None:
        payload = job.payload
        if payload is None:
            return "the pop carries no payload"
        if job.model not in self.settings.models:
            return f"model {job.model} is not served by this worker"
        if (
            payload.use_nsfw_censor
            and self._safety is None
            and job.model not in self.settings.noise_models
        ):
            return (
                "the job asks for the NSFW censor and this worker has no safety classifier "
                "(worker.safety_model)"
            )
        if payload.post_processing:
            return "post-processing is not available on this worker"
        return None

    async def _prepare(self, job: PopResponse) -> Prepared:
        """Fetch the job's source image and assets (started at pop time, beside other jobs)."""
        refusal = self._refusal(job)
        if refusal is not None or job.payload is None:
            return Prepared(job, refusal=refusal or "the pop carries no payload")
        payload = job.payload
        if not job.source_image and not payload.loras and not payload.tis:
            return Prepared(job)
        started = time.monotonic()
        (source, notes), fetched = await asyncio.gather(
            self._fetch_source(job), self._fetch_assets(job.model or "", payload.loras, payload.tis)
        )
        fetch_s = time.monotonic() - started
        if job.source_image and source is None:
            job = job.model_copy(update={"source_image": None})
        assets, failures = job_assets(payload, fetched, notes)
        if failures and self.settings.asset_failure == "fault":
            reason = "; ".join(one_line(err.message) for err in failures)
            refusal_notes = tuple(err.gen_metadata() for err in failures)
            return Prepared(job, refusal=reason, refusal_notes=refusal_notes, fetch_s=fetch_s)
        return Prepared(job, assets=assets, source=source, fetch_s=fetch_s)

    async def _fetch_source(self, job: PopResponse) -> tuple[bytes | None, tuple[GenMetadata, ...]]:
        if not job.source_image:
            return None, ()
        try:
            return await self._horde.fetch_image(job.source_image), ()
        except HordeError as exc:
            log.warning("job %s: source image unavailable (%s); running without it", job.id, exc)
            return None, (GenMetadata(type="source_image", value="download_failed"),)

    async def _fetch_assets(
        self, model: str, loras: Sequence[LoraSpec], tis: Sequence[TISpec]
    ) -> list[Asset | AssetError]:
        if not loras and not tis:
            return []
        if self._assets is None:
            off = "LoRAs and TIs are off on this worker"
            return [
                *(AssetError("download_failed", off, kind="lora", ref=s.name) for s in loras),
                *(AssetError("download_failed", off, kind="ti", ref=s.name) for s in tis),
            ]
        return await self._assets.prefetch(loras, tis, baseline=self._baselines.get(model))

    # ---- running a job ---------------------------------------------------------------------------

    async def _runner(self) -> None:
        while True:
            held = await self._queue.get()
            if held is None:
                return
            try:
                await self._process(held)
            except Exception:
                # A bug in the loop itself: the job must still go back to the horde.
                log.exception("job %s: unexpected error in the worker loop", held.short)
                self._fault(held, "internal error in the worker loop", refused=False)
            finally:
                self._release()

    async def _process(self, held: HeldJob) -> None:
        waiting = time.monotonic()
        prepared = await held.ready
        if prepared.fetch_s:
            self._stats.fetched(prepared.fetch_s, waited_s=time.monotonic() - waiting)
        if self._aborting.is_set():
            self._fault(held, "the worker is shutting down", refused=True)
            return
        if prepared.refusal is not None:
            self._fault(held, prepared.refusal, refused=True, notes=prepared.refusal_notes)
            return
        if held.deadline is not None:
            left = held.deadline - time.monotonic()
            expected = self._stats.expected_job_seconds()
            if left <= 0 or (expected is not None and left < expected):
                reason = f"its TTL would run out before it finished ({left:.0f} s left)"
                self._fault(held, reason, refused=True)
                return
        try:
            result = await self._infer(prepared)
        except _Aborted:
            self._fault(held, "the worker stopped during inference", refused=True)
            return
        except JobError as exc:
            self._fault(held, one_line(str(exc)), refused=True)
            return
        except Exception as exc:
            log.exception("job %s: inference failed", held.short)
            self._fault(held, f"inference failed: {type(exc).__name__}", refused=False)
            return
        try:
            outgoing = await self._censor(held, check_result(held.job, result))
        except ResultMismatch as exc:
            log.error("job %s: %s; faulting it instead of submitting", held.short, exc)
            self._fault(held, "the result did not match the job", refused=False)
            return
        except Exception as exc:
            log.exception("job %s: safety check failed", held.short)
            self._fault(held, f"safety check failed: {type(exc).__name__}", refused=False)
            return
        self._failures_in_a_row = 0
        self._stats.finished(result.seconds, result.sampling_seconds, result.steps)
        self._spawn(self._submit_images(held, result, outgoing), f"submit {held.short}")

    async def _infer(self, prepared: Prepared) -> JobResult:
        work = asyncio.get_running_loop().run_in_executor(
            self._executor, self._engine.run, prepared.job, prepared.assets, prepared.source
        )
        abort = asyncio.ensure_future(self._aborting.wait())
        waiting: set[asyncio.Future[Any]] = {work, abort}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abort.cancel()
        if work.done():
            return work.result()
        # The thread cannot be interrupted; its images are dropped when it ends.
        work.add_done_callback(_ignore_outcome)
        raise _Aborted

    async def _censor(self, held: HeldJob, images: tuple[JobImage, ...]) -> list[Outgoing]:
        payload = held.job.payload
        wanted = (payload is not None and payload.use_nsfw_censor) or not self.settings.nsfw
        safety = self._safety if wanted else None
        out: list[Outgoing] = []
        for image in images:
            if safety is not None and await asyncio.to_thread(safety.is_nsfw, image.webp):
                width, height = (payload.width, payload.height) if payload else (64, 64)
                notes = (*image.metadata, GenMetadata(type="censorship", value="nsfw"))
                blank = blank_webp(width, height)
                out.append(Outgoing(image.job_id, image.seed, blank, "censored", notes))
                continue
            state: SubmitState = "censored" if image.censored else "ok"
            out.append(Outgoing(image.job_id, image.seed, image.webp, state, image.metadata))
        return out

    # ---- handing in --------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fault(
        self,
        held: HeldJob,
        reason: str,
        *,
        refused: bool,
        notes: Sequence[GenMetadata] = (),
    ) -> None:
        """Count a failed job and hand it back ``faulted``, with the reason, for every id."""
        log.warning("job %s faulted: %s", held.short, reason)
        self._stats.faulted(refused=refused)
        if not refused:
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= self.settings.pause_after_faults:
                self._failures_in_a_row = 0
                self._paused_until = time.monotonic() + self.settings.fault_pause_s
                log.warning(
                    "%d jobs in a row failed; not popping for %.0f s",
                    self.settings.pause_after_faults,
                    self.settings.fault_pause_s,
                )
        self._spawn(self._submit_all(fault_submits(held, reason, notes)), f"fault {held.short}")

    async def _submit_all(self, bodies: list[SubmitInput]) -> None:
        for body in bodies:
            await self._submit(body)

    async def _submit_images(
        self, held: HeldJob, result: JobResult, images: list[Outgoing]
    ) -> None:
        reward = 0.0
        states: list[str] = []
        for index, image in enumerate(images):
            try:
                body = image_submit(held, index, image, await self._generation(held, index, image))
            except ResultMismatch as exc:
                log.error("%s; not submitted", exc)
                continue
            answer = await self._submit(body)
            if answer is not None:
                reward += answer.reward
                self._stats.submitted(answer.reward, censored=image.state == "censored")
            states.append(image.state)
        payload = held.job.payload
        log.info(
            "job %s %s: %s in %.2f s at %.2f it/s (%d steps), %.2f s since pop, %.2f kudos",
            held.short,
            f"{payload.width}x{payload.height}" if payload else "",
            "/".join(states) or "not submitted",
            result.seconds,
            result.its,
            result.steps,
            time.monotonic() - held.popped_at,
            reward,
        )

    async def _generation(self, held: HeldJob, index: int, image: Outgoing) -> str:
        url = held.upload_url(index)
        if url is not None and image.job_id == held.ids[index]:
            try:
                await self._horde.upload_r2(url, image.webp)
                return "R2"
            except HordeError as exc:
                log.warning("job %s: upload failed (%s); sending base64", held.short, exc)
        return base64_generation(image.webp)

    async def _submit(self, body: SubmitInput) -> SubmitResponse | None:
        """Send one submit, retrying what may pass; None when it did not land."""
        if body.id not in self._outstanding:
            log.error("not submitting %s: this worker holds no such unanswered job", body.id)
            return None
        attempts = self.settings.submit_attempts
        for attempt in range(1, attempts + 1):
            try:
                answer = await self._horde.submit(body)
            except (DuplicateGen, AbortedGen, InvalidJobID) as exc:
                log.warning("job %s: the horde will not take it: %s", body.id[:8], exc)
                break
            except HordeError as exc:
                if not exc.transient or attempt == attempts:
                    log.error("job %s: submit failed: %s", body.id[:8], exc)
                    break
                delay = self._backoff(attempt)
                log.warning("job %s: submit failed (%s); retry in %.1f s", body.id[:8], exc, delay)
                await asyncio.sleep(delay)
                continue
            self._outstanding.discard(body.id)
            return answer
        self._outstanding.discard(body.id)
        self._stats.lost()
        return None

    # ---- reporting ---------------------------------------------------------------------------

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            log.info("worker %r: %s", self.settings.name, self._stats.snapshot().line())


def _fatal(exc: HordeError) -> bool:
    """Refusals a retry will not change: the key, the name, or the pop's settings."""
    return isinstance(exc, Unauthorized | AnonForbiddenWorker | WrongCredentials | BadRequest)


def _consume(task: asyncio.Task[Prepared]) -> None:
    """Mark a preparation's failure as seen; the runner that awaits it reports it."""
    if not task.cancelled():
        task.exception()


def _ignore_outcome(future: asyncio.Future[JobResult]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.info("an abandoned job's inference ended with %r", future.exception())
