"""The generation service: every adapter's one entry point for image commands.

It parses and checks a command, stores it *before* anything is sent to the horde, submits it,
tracks it with the shared poller, reports throttled progress, keeps the images on disk and delivers
the reply exactly once, also after a restart (``start`` resumes whatever was in flight).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.blocklist import Blocklist
from core.contract import Adapter, DeliveryError
from core.errors import UserError
from core.horde.client import HordeClient
from core.horde.errors import HordeError, NotFound, TooManyPrompts
from core.horde.poller import HordePoller, PollProgress
from core.horde.wire import GenerationInput, RequestAsync, RequestStatusStable
from core.messages import (
    Ack,
    AckKind,
    Action,
    ImageMeta,
    Invocation,
    OutImage,
    Phase,
    Progress,
    Reply,
    ReplyTarget,
)
from core.payload import BuiltRequest
from core.throttle import Throttle, ThrottleRules

log = logging.getLogger(__name__)


class RequestPlanner(Protocol):
    """Turns a command into horde requests (grammar, styles, model reference, channel policy)."""

    def plan(self, invocation: Invocation, *, rng: random.Random) -> list[BuiltRequest]:
        """The requests to send; raises ``UserError`` for input the user must change."""
        ...


@dataclass(frozen=True, slots=True)
class StoredGeneration:
    """A generation as the store keeps it."""

    id: str
    platform: str
    event_id: str
    user_key: str
    target: ReplyTarget
    body: Mapping[str, Any]
    state: str
    horde_id: str | None = None
    style: str | None = None
    category: str | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None


class GenerationLedger(Protocol):
    """What the service needs from persistence; every transition is a compare-and-set."""

    async def accept(
        self, platform: str, event_id: str, generations: Sequence[StoredGeneration]
    ) -> bool:
        """Store an event's generations atomically; False when the event was seen before."""
        ...

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record an event with no generation; False when it was seen before."""
        ...

    async def mark_submitted(self, generation_id: str, horde_id: str) -> bool: ...

    async def requeue(self, generation_id: str) -> bool:
        """submitted → accepted, to submit it again elsewhere."""
        ...

    async def mark_done(self, generation_id: str, result: Mapping[str, Any]) -> bool: ...

    async def mark_failed(self, generation_id: str, error: str) -> bool: ...

    async def mark_delivered(self, generation_id: str, message_id: str) -> bool: ...

    async def in_flight(self) -> list[StoredGeneration]: ...

    async def user_api_key(self, platform: str, user_id: str) -> str | None: ...

    async def last_generation(self, platform: str, user_key: str) -> StoredGeneration | None: ...


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Knobs of the service that come from config."""

    images_dir: Path
    progress_interval_s: float = 5.0
    throttle: ThrottleRules = field(default_factory=ThrottleRules)
    blocklist: Blocklist = field(default_factory=Blocklist)
    community_workers: tuple[str, ...] = ()
    # Generations driven at once; the rest wait their turn, already stored.
    max_active: int = 200
    # A request for the community's workers goes to the whole horde past this wait estimate.
    community_fallback_s: float = 120.0
    # While the horde has too many of our images waiting, submit again after this (growing).
    busy_retry_s: float = 5.0
    # Outages (5xx, timeouts after the client's own retries) are retried this many times.
    transient_attempts: int = 5
    # A platform that cannot take a reply (down, rate-limited) is tried again after this, growing.
    delivery_retry_s: float = 5.0
    delivery_retry_max_s: float = 300.0
    # An adapter's unexpected exception is tried this many times; a DeliveryError until stop.
    delivery_attempts_on_bugs: int = 3


@dataclass
class _Running:
    generation: StoredGeneration
    task: asyncio.Task[None] | None = None
    horde_id: str | None = None
    cancelled: bool = False
    fallback: bool = False
    last_progress: float = field(default=-1e9)


DeliveryListener = Callable[[StoredGeneration, Reply, str], Awaitable[None]]


class GenerationService:
    """Accepts commands from adapters, runs them on the horde, delivers each reply once."""

    def __init__(
        self,
        *,
        ledger: GenerationLedger,
        horde: HordeClient,
        poller: HordePoller,
        planner: RequestPlanner,
        settings: ServiceSettings,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._horde = horde
        self._poller = poller
        self._planner = planner
        self._settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._throttle = Throttle(settings.throttle, clock=clock)
        self._adapters: dict[str, Adapter] = {}
        self._delivery_listeners: list[DeliveryListener] = []
        self._submitting: set[asyncio.Task[RequestAsync]] = set()
        self._running: dict[str, _Running] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._active = asyncio.Semaphore(settings.max_active)
        self._online_workers: dict[str, str] = {}
        self._workers_seen_at = -1e9
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    # ---- lifecycle -----------------------------------------------------------------------

    def attach(self, adapter: Adapter) -> None:
        """Deliver replies for ``adapter.name`` through this adapter."""
        self._adapters[adapter.name] = adapter
        for running in self._running.values():
            if running.generation.platform == adapter.name and running.task is None:
                self._spawn(running.generation)

    def on_delivered(self, listener: DeliveryListener) -> None:
        """Call ``listener(generation, reply, message_id)`` after each recorded delivery."""
        self._delivery_listeners.append(listener)

    async def start(self) -> int:
        """Resume every generation that was in flight when the process stopped; returns how many."""
        pending = await self._ledger.in_flight()
        for generation in pending:
            self._throttle.restore(generation.user_key)
            self._spawn(generation)
        if pending:
            log.info("resumed %d generations", len(pending))
        return len(pending)

    async def wait_idle(self) -> None:
        """Return when nothing is in flight."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Stop driving generations; what is unfinished stays stored and resumes at next start."""
        self._closed = True
        tasks = [r.task for r in self._running.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A request on its way to the horde finishes and is recorded, or it would be sent twice.
        await asyncio.gather(*self._submitting, return_exceptions=True)

    # ---- the inbox ------------------------------------------------------------------------

    async def submit(self, invocation: Invocation) -> Ack:
        """Handle one image command: stored durably and acknowledged, a duplicate, or refused."""
        user_key = f"{invocation.platform}:{invocation.user.user_id}"
        try:
            keyed = await self._ledger.user_api_key(invocation.platform, invocation.user.user_id)
            planned = self._plan(invocation)
            self._throttle.admit(user_key, keyed=keyed is not None)
        except UserError as exc:
            return await self._refuse(invocation, str(exc))
        return await self._store_and_start(invocation, planned, user_key=user_key)

    async def _refuse(self, invocation: Invocation, message: str) -> Ack:
        # A refusal is a reply too: claim the event so a redelivery gets no second one.
        if not await self._ledger.claim_event(invocation.platform, invocation.event_id):
            return Ack(AckKind.DUPLICATE)
        return Ack(AckKind.REJECTED, message)

    async def submit_planned(
        self, invocation: Invocation, planned: Sequence[BuiltRequest], *, user_key: str
    ) -> Ack:
        """Store and start requests already planned (a reroll reuses a stored body).

        They pass the same cooldown and concurrency cap as a fresh command.
        """
        try:
            keyed = await self._ledger.user_api_key(invocation.platform, invocation.user.user_id)
            self._throttle.admit(user_key, keyed=keyed is not None)
        except UserError as exc:
            return await self._refuse(invocation, str(exc))
        return await self._store_and_start(invocation, planned, user_key=user_key)

    async def _store_and_start(
        self, invocation: Invocation, planned: Sequence[BuiltRequest], *, user_key: str
    ) -> Ack:
        generations = [
            StoredGeneration(
                id=str(uuid.uuid4()),
                platform=invocation.platform,
                event_id=invocation.event_id,
                user_key=user_key,
                target=invocation.target,
                body=plan.body.to_wire(),
                state="accepted",
                style=plan.style,
                category=plan.category,
            )
            for plan in planned
        ]
        try:
            fresh = await self._ledger.accept(invocation.platform, invocation.event_id, generations)
        except Exception:
            # Nothing was stored, so nothing is lost: the user can simply ask again.
            log.exception("could not store event %s", invocation.event_id)
            self._throttle.release(user_key)
            return Ack(AckKind.REJECTED, "the bot is busy right now; please try again shortly")
        if not fresh:
            self._throttle.release(user_key)
            return Ack(AckKind.DUPLICATE)
        # Admission counted one; every generation holds a slot until it ends.
        for _ in generations[1:]:
            self._throttle.restore(user_key)
        for generation in generations:
            self._spawn(generation)
        warnings = sorted({w for plan in planned for w in plan.warnings})
        return Ack(AckKind.ACCEPTED, "; ".join(warnings), tuple(g.id for g in generations))

    def _plan(self, invocation: Invocation) -> list[BuiltRequest]:
        planned = self._planner.plan(invocation, rng=self._rng)
        if not planned:
            raise UserError("nothing to draw: add a prompt")
        for plan in planned:
            self._settings.blocklist.check(
                plan.body.prompt, style=plan.style, models=list(plan.body.models)
            )
            if self._settings.community_workers and not plan.body.workers:
                plan.body.workers = list(self._settings.community_workers)
        return planned

    def in_flight_for(self, user_key: str) -> list[str]:
        """The generation ids of one user (``platform:user id``) still running, oldest first."""
        return [g for g, r in self._running.items() if r.generation.user_key == user_key]

    async def cancel(self, generation_id: str) -> str:
        """Stop a generation at the horde; what finished so far is still delivered."""
        running = self._running.get(generation_id)
        if running is None:
            raise UserError("nothing to cancel: that request has already finished")
        horde_id = running.horde_id or running.generation.horde_id
        if horde_id is None:
            raise UserError("that request is still being sent to the horde; try again in a moment")
        running.cancelled = True
        try:
            await self._poller.cancel(horde_id)
        except HordeError as exc:
            running.cancelled = False
            raise UserError(exc.user_message) from None
        return generation_id

    # ---- driving one generation -----------------------------------------------------------

    def _spawn(self, generation: StoredGeneration) -> None:
        running = self._running.setdefault(generation.id, _Running(generation))
        self._idle.clear()
        if self._closed or running.task is not None:
            return
        if generation.state == "done" and generation.platform not in self._adapters:
            return  # delivered when its adapter attaches
        running.task = asyncio.create_task(self._drive(generation), name=f"gen-{generation.id}")

    async def _drive(self, generation: StoredGeneration) -> None:
        try:
            # A burst waits here, stored, instead of crowding the horde client and the database.
            async with self._active:
                await self._advance(generation)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("generation %s failed unexpectedly", generation.id)
            await self._fail(generation, "something went wrong on our side; please try again")
        finally:
            self._finish(generation)

    async def _advance(self, generation: StoredGeneration) -> None:
        state, horde_id = generation.state, generation.horde_id
        result = generation.result
        if state == "failed":
            await self._deliver(generation, Reply(generation.id, error=generation.error))
            return
        if state == "accepted":
            accepted = await self._submit_when_possible(generation)
            if accepted is None:
                return
            horde_id = accepted.id
            if (running := self._running.get(generation.id)) is not None:
                running.horde_id = horde_id
            state = "submitted"
        if state == "submitted" and horde_id is not None:
            try:
                final = await self._poller.track(horde_id, self._progress_cb(generation))
            except NotFound:
                await self._fail(
                    generation, "the horde forgot this request (it expired); ask again"
                )
                return
            except HordeError as exc:
                await self._fail(generation, exc.user_message)
                return
            running = self._running.get(generation.id)
            if running is not None and running.fallback and not final.generations:
                # The community's workers were too slow: the whole horde gets it instead.
                await self._ledger.requeue(generation.id)
                accepted = await self._submit_when_possible(generation, whole_horde=True)
                if accepted is None:
                    return
                running.horde_id = accepted.id
                try:
                    final = await self._poller.track(accepted.id, self._progress_cb(generation))
                except HordeError as exc:
                    await self._fail(generation, exc.user_message)
                    return
            result = await self._keep_images(generation, final)
            if result is None:
                return
            await self._ledger.mark_done(generation.id, result)
        if result is None:
            await self._fail(generation, "this request was lost on the way; please ask again")
            return
        await self._deliver(generation, await self._reply(generation, result))

    async def _submit_when_possible(
        self, generation: StoredGeneration, *, whole_horde: bool = False
    ) -> RequestAsync | None:
        """Submit; while the horde says "too many waiting" or is briefly down, wait and retry.

        The request stays stored as accepted meanwhile, so a restart resumes the wait too. A
        request for the community's workers goes to the whole horde when none of them is online.
        """
        body = GenerationInput.model_validate(generation.body)
        if body.workers:
            # Config names workers by id or name; the horde takes the ids of online ones.
            body.workers = [] if whole_horde else await self._online_community(body.workers)
        for attempt in itertools.count(1):
            try:
                client = await self._client_for(generation)
                return await self._generate_recorded(client, body, generation)
            except TooManyPrompts:
                delay = min(self._settings.busy_retry_s * attempt, 30.0)
            except HordeError as exc:
                if not exc.transient or attempt >= self._settings.transient_attempts:
                    await self._fail(generation, exc.user_message)
                    return None
                delay = exc.retry_after or min(2.0**attempt, 60.0)
            log.info("generation %s waits %.0f s before submitting again", generation.id, delay)
            await asyncio.sleep(delay)
        return None

    async def _generate_recorded(
        self, client: HordeClient, body: GenerationInput, generation: StoredGeneration
    ) -> RequestAsync:
        """Send the request and record its horde id as one step that a stop lets finish.

        Cancelled between the two, a restart would send (and pay for) the same request again.
        """

        async def send_and_record() -> RequestAsync:
            accepted = await client.generate(body)
            await self._ledger.mark_submitted(generation.id, accepted.id)
            return accepted

        task = asyncio.create_task(send_and_record(), name=f"submit-{generation.id}")
        self._submitting.add(task)
        task.add_done_callback(self._submitting.discard)
        return await asyncio.shield(task)

    async def _online_community(self, wanted: Sequence[str]) -> list[str]:
        """The ids of the named workers (by id or name) that are online; the list is cached."""
        now = self._clock()
        if now - self._workers_seen_at > 30.0:
            try:
                rows = await self._horde.workers()
            except HordeError:
                rows = []
            self._online_workers = {
                str(value): str(row["id"])
                for row in rows
                if row.get("online") and row.get("id")
                for value in (row.get("id"), row.get("name"))
                if value
            }
            self._workers_seen_at = now
        return sorted({self._online_workers[w] for w in wanted if w in self._online_workers})

    async def _client_for(self, generation: StoredGeneration) -> HordeClient:
        """A user's own key when they stored one (their kudos, their priority), else the bot's."""
        platform, _, user_id = generation.user_key.partition(":")
        key = await self._ledger.user_api_key(platform, user_id)
        return self._horde.with_key(key) if key else self._horde

    async def _keep_images(
        self, generation: StoredGeneration, final: RequestStatusStable
    ) -> dict[str, Any] | None:
        if final.faulted or not final.generations:
            running = self._running.get(generation.id)
            if running is not None and running.cancelled:
                await self._fail(generation, "cancelled at your request before any image was done")
            else:
                await self._fail(generation, "no worker could finish this request; try again later")
            return None
        folder = self._settings.images_dir
        images = []
        for index, item in enumerate(final.generations):
            data = await self._horde.fetch_image(item)
            path = folder / f"{generation.id}-{index}.webp"
            await asyncio.to_thread(_write_atomically, path, data)
            images.append(
                {
                    "path": str(path),
                    "seed": item.seed,
                    "model": item.model,
                    "worker": item.worker_name,
                    "job_id": item.id,
                    "censored": item.censored,
                }
            )
        return {"images": images, "kudos": final.kudos}

    async def _reply(self, generation: StoredGeneration, result: Mapping[str, Any]) -> Reply:
        body = generation.body
        prompt = str(body.get("prompt", ""))
        positive = prompt.split("###", 1)[0].strip()
        images: list[OutImage] = []
        metas: list[ImageMeta] = []
        for item in result.get("images", []):
            data = await asyncio.to_thread(Path(item["path"]).read_bytes)
            alt = f"AI-generated image: {positive}"[:1000]
            images.append(
                OutImage(
                    data=data,
                    alt_text=alt,
                    nsfw=bool(body.get("nsfw")),
                    censored=bool(item.get("censored")),
                )
            )
            metas.append(
                ImageMeta(
                    seed=str(item.get("seed", "")),
                    model=str(item.get("model", "")),
                    worker=str(item.get("worker", "")),
                    job_id=str(item.get("job_id", "")),
                    censored=bool(item.get("censored")),
                )
            )
        first = metas[0] if metas else None
        censored = sum(1 for m in metas if m.censored)
        text = f"“{positive}”"
        if censored:
            text += f" ({censored} image{'s' if censored > 1 else ''} censored by the horde)"
        metadata = {
            "prompt": positive,
            "style": generation.style,
            "category": generation.category,
            "model": first.model if first else "",
            "seed": first.seed if first else "",
            "kudos": result.get("kudos"),
            "worker": first.worker if first else "",
            "generation_id": generation.id,
            "images": metas,
        }
        return Reply(
            generation.id,
            text=text,
            images=tuple(images),
            metadata=metadata,
            actions=(Action.REROLL, Action.VARIATIONS, Action.DELETE),
        )

    async def _fail(self, generation: StoredGeneration, message: str) -> None:
        await self._ledger.mark_failed(generation.id, message)
        await self._deliver(generation, Reply(generation.id, error=message))

    async def _deliver(self, generation: StoredGeneration, reply: Reply) -> None:
        adapter = self._adapters.get(generation.platform)
        if adapter is None:
            log.warning("no %s adapter running; %s waits", generation.platform, generation.id)
            return
        message_id, taken = await self._send_until_taken(adapter, generation, reply)
        if not await self._ledger.mark_delivered(generation.id, message_id):
            log.warning("generation %s was already delivered", generation.id)
            return
        if not taken:
            return
        for listener in self._delivery_listeners:
            try:
                await listener(generation, reply, message_id)
            except Exception:
                log.exception("a delivery listener failed for %s", generation.id)

    async def _send_until_taken(
        self, adapter: Adapter, generation: StoredGeneration, reply: Reply
    ) -> tuple[str, bool]:
        """Post the reply: its message id, and whether the platform took it.

        A platform outage is waited out (the reply stays stored meanwhile); a refusal is recorded
        as delivered so that it is not retried forever.
        """
        delay = self._settings.delivery_retry_s
        bugs = 0
        while True:
            try:
                return await adapter.send(generation.target, reply), True
            except DeliveryError as exc:
                if not exc.retryable:
                    # The platform will never take it (a deleted channel, a blocked bot).
                    log.warning("%s refused %s: %s", adapter.name, generation.id, exc)
                    return f"refused: {exc}"[:200], False
                log.info("%s could not take %s yet (%s)", adapter.name, generation.id, exc)
            except Exception:
                bugs += 1
                log.exception("%s failed to send %s", adapter.name, generation.id)
                if bugs >= self._settings.delivery_attempts_on_bugs:
                    return "refused: the adapter failed", False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.delivery_retry_max_s)

    def _progress_cb(self, generation: StoredGeneration) -> Callable[[PollProgress], Any]:
        async def report(progress: PollProgress) -> None:
            running = self._running.get(generation.id)
            adapter = self._adapters.get(generation.platform)
            now = self._clock()
            if running is None:
                return
            self._maybe_fall_back(generation, running, progress)
            if adapter is None:
                return
            if now - running.last_progress < self._settings.progress_interval_s:
                return
            running.last_progress = now
            check = progress.check
            phase = Phase.PROCESSING if progress.phase == "processing" else Phase.WAITING
            total = check.finished + check.processing + check.waiting + check.restarted
            await adapter.show_progress(
                generation.target,
                Progress(
                    generation_id=generation.id,
                    phase=phase,
                    queue_position=check.queue_position,
                    wait_time=check.wait_time,
                    finished=check.finished,
                    total=max(total, 1),
                ),
            )

        return report

    def _maybe_fall_back(
        self, generation: StoredGeneration, running: _Running, progress: PollProgress
    ) -> None:
        """Past the wait threshold with nothing started, stop waiting for the community."""
        check = progress.check
        if (
            running.fallback
            or not generation.body.get("workers")
            or check.processing
            or check.finished
            or check.wait_time <= self._settings.community_fallback_s
        ):
            return
        running.fallback = True
        log.info("generation %s: community workers too slow, asking the whole horde", generation.id)
        task = asyncio.create_task(self._poller.cancel(progress.request_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _finish(self, generation: StoredGeneration) -> None:
        running = self._running.pop(generation.id, None)
        if running is not None and running.task is not None:
            self._throttle.release(generation.user_key)
        if not self._running:
            self._idle.set()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
