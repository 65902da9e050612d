"""The embedded horde's behaviour: accounts, the request queue, pops, submits and kudos.

``Horde`` keeps the live state in memory (so a pop scans a small in-memory queue instead of
querying) and mirrors every change to the database through the ``Journal`` before it answers, so
an acknowledged request, pop, submit or transfer survives ``kill -9``. Only the event loop calls
it; HTTP concerns (headers, JSON, status codes of schema errors) stay in ``routes``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from core.horde.server import tables
from core.horde.server.database import (
    check_user_name,
    insert_user,
    load,
    make_engine,
    new_api_key,
    user_from_row,
)
from core.horde.server.errors import HordeError
from core.horde.server.images import ImageInvalid, ImageStore, Links, decode_base64, inspect_source
from core.horde.server.journal import Op, Write, open_journal, write
from core.horde.server.matching import pick_model, serves, skip_reason, worker_models
from core.horde.server.pricing import (
    image_kudos,
    image_seeds,
    job_ttl,
    megapixelsteps,
    upscaler_count,
)
from core.horde.server.records import HordeRequest, Job, User, Worker, key_hash
from core.horde.server.settings import HordeSettings
from core.horde.wire import (
    ActiveModel,
    DryRunResponse,
    Generation,
    GenerationInput,
    KudosTransferInput,
    KudosTransferResponse,
    PopInput,
    PopPayload,
    PopResponse,
    RequestAsync,
    RequestStatusCheck,
    RequestStatusStable,
    SubmitInput,
    SubmitResponse,
    UserDetails,
    WarningItem,
    WorkerDetails,
)

_log = logging.getLogger(__name__)

IDEMPOTENCY_TTL_S = 24 * 3600
# Pops are frequent; the horde itself only records a worker's check-in every 30 s.
CHECKIN_DEBOUNCE_S = 30.0
# A nominal worker speed, only for the wait estimate in check (the horde measures real speeds).
NOMINAL_MPS_PER_S = 1.0
MAX_PROMPT_WORDS = 7500
MAX_SOURCE_SIDE = 3072
FAULTS_TO_FAIL = 3
_TARGET = re.compile(r"^(?P<name>.*)#(?P<id>\d{1,12})$")

NO_WORKER_MESSAGE = (
    "No worker serving these models is online now; the request stays queued for 20 minutes."
)


def _invalid_key() -> HordeError:
    return HordeError(401, "InvalidAPIKey", "Unknown API key; check the apikey header.")


def _no_key() -> HordeError:
    return HordeError(
        401, "InvalidAPIKey", "No API key; send the apikey header (0000000000 for anonymous)."
    )


def _not_found(request_id: str) -> HordeError:
    return HordeError(
        404, "RequestNotFound", f"No request with id {request_id[:64]!r}; it may have expired."
    )


@functools.cache
def _update_statement(table: Any, columns: tuple[str, ...]) -> Any:
    # Built once per shape: constructing SQLAlchemy statements costs more than running them.
    values: dict[str, Any] = {column: bindparam(f"v_{column}") for column in columns}
    return update(table).where(table.c.id == bindparam("key_")).values(values)


@functools.cache
def _insert_statement(table: Any) -> Any:
    return insert(table)


def _update(table: Any, key: Any, **values: Any) -> Op:
    statement = _update_statement(table, tuple(sorted(values)))
    params = {"key_": key, **{f"v_{column}": value for column, value in values.items()}}
    return Write(statement, params)


def _insert(table: Any, rows: list[dict[str, Any]]) -> Op:
    return Write(_insert_statement(table), rows)


def _job_row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "request_id": job.request_id,
        "idx": job.idx,
        "worker_id": job.worker_id,
        "model": job.model,
        "state": job.state,
        "popped": job.popped,
        "deadline": job.deadline,
        "seed": job.seed,
        "finished": job.finished,
        "censored": job.censored,
        "gen_metadata": list(job.gen_metadata),
        "reward": job.reward,
    }


def _job_update(job: Job) -> Op:
    return _update(
        tables.jobs,
        job.id,
        state=job.state,
        finished=job.finished,
        censored=job.censored,
        gen_metadata=list(job.gen_metadata),
        reward=job.reward,
        seed=job.seed,
    )


def _delete_request(request_id: str) -> Op:
    def run(conn: Connection) -> None:
        conn.execute(delete(tables.jobs).where(tables.jobs.c.request_id == request_id))
        conn.execute(delete(tables.requests).where(tables.requests.c.id == request_id))

    return run


def _delete_transfer(user_id: int, key: str) -> Op:
    table = tables.transfers
    statement = delete(table).where((table.c.user_id == user_id) & (table.c.key == key))
    return lambda conn: conn.execute(statement)


def _fetch_user(hashed: str, conn: Connection) -> User | None:
    row = conn.execute(select(tables.users).where(tables.users.c.key_hash == hashed)).first()
    return None if row is None else user_from_row(row)


def _fetch_user_by_name(name: str, conn: Connection) -> User | None:
    table = tables.users
    query = select(table).where((table.c.name == name) & (table.c.id > 0)).order_by(table.c.id)
    row = conn.execute(query.limit(1)).first()
    return None if row is None else user_from_row(row)


def _fetch_user_by_id(user_id: int, conn: Connection) -> User | None:
    row = conn.execute(select(tables.users).where(tables.users.c.id == user_id)).first()
    return None if row is None else user_from_row(row)


def _queue_order(request: HordeRequest) -> tuple[float, float]:
    # The horde serves richer requesters first (kudos at creation), then older requests.
    return (-request.priority, request.created)


class Horde:
    """The embedded horde's state and rules, behind async methods the routes call."""

    def __init__(self, settings: HordeSettings, engine: Engine) -> None:
        self.settings = settings
        self._engine = engine
        with engine.begin() as conn:
            snapshot = load(conn, time.time())
        self.images = ImageStore(settings.resolved_images_dir(), snapshot.secret)
        self._users: dict[int, User] = {}
        self._by_hash: dict[str, User] = {}
        for user in snapshot.users:
            self._remember(user)
        self._workers = {worker.id: worker for worker in snapshot.workers}
        self._workers_by_name = {worker.name: worker for worker in snapshot.workers}
        self._requests = {request.id: request for request in snapshot.requests}
        self._jobs = {job.id: job for request in snapshot.requests for job in request.jobs}
        self._queue = {request.id: request for request in snapshot.requests if request.waiting}
        self._transfers = snapshot.transfers
        self._journal = open_journal(engine)

    @classmethod
    def open(cls, settings: HordeSettings) -> Horde:
        """Open (or create) the database and load the horde's state; blocking."""
        return cls(settings, make_engine(settings))

    async def settle(self) -> None:
        """Let queued writes commit and fold the write-ahead log back (before ``close``)."""
        await asyncio.sleep(0)
        await self._journal.checkpoint()

    def close(self) -> None:
        """Flush pending writes and release the database; blocking."""
        self._journal.close()
        self._engine.dispose()

    def links(self, base: str) -> Links:
        """Signed image links under a public base URL (ending in ``/api``)."""
        return Links(base.rstrip("/"), self.images)

    # ---- accounts -----------------------------------------------------------------------

    def _remember(self, user: User) -> User:
        known = self._users.setdefault(user.id, user)
        self._by_hash[known.key_hash] = known
        return known

    async def user_for_key(self, api_key: str | None, *, unknown_rc: str = "") -> User:
        """The account behind an ``apikey`` header (users added by the CLI are found too)."""
        if not api_key:
            raise _no_key()
        hashed = key_hash(api_key)
        user = self._by_hash.get(hashed)
        if user is None:
            found = await self._journal.run(partial(_fetch_user, hashed))
            if found is None:
                if unknown_rc == "UserNotFound":
                    raise HordeError(404, "UserNotFound", "No user has this API key.")
                raise _invalid_key()
            user = self._remember(found)
        return user

    async def _user_by_id(self, user_id: int) -> User | None:
        user = self._users.get(user_id)
        if user is None:
            found = await self._journal.run(partial(_fetch_user_by_id, user_id))
            user = None if found is None else self._remember(found)
        return user

    async def add_user(self, name: str, *, kudos: float = 0.0, trusted: bool = False) -> str:
        """Create an account and return its API key (the only time the key is seen)."""
        cleaned = check_user_name(name)
        user, key = await self._journal.run(
            lambda conn: insert_user(conn, cleaned, kudos, trusted, time.time())
        )
        self._remember(user)
        return key

    async def issue_key(self, name: str, *, kudos: float = 0.0, trusted: bool = False) -> str:
        """A fresh API key for the account named ``name``, created (with ``kudos``) if missing.

        For the composition root's own accounts (the bots' and the local worker's): keys are
        stored hashed, so each start replaces the account's key instead of reading it back; an
        existing account keeps its kudos.
        """
        cleaned = check_user_name(name)
        found = await self._journal.run(partial(_fetch_user_by_name, cleaned))
        if found is None:
            return await self.add_user(cleaned, kudos=kudos, trusted=trusted)
        user = self._remember(found)
        key = new_api_key()
        self._by_hash.pop(user.key_hash, None)
        user.key_hash = key_hash(key)
        self._by_hash[user.key_hash] = user
        await write(self._journal, _update(tables.users, user.id, key_hash=user.key_hash))
        return key

    def find_user(self, user: User) -> UserDetails:
        """``find_user``: the account's public details."""
        owned = [worker.id for worker in self._workers.values() if worker.user_id == user.id]
        return UserDetails(
            username=user.username,
            id=user.id,
            kudos=round(user.kudos, 2),
            concurrency=self.settings.user_concurrency,
            worker_count=len(owned),
            worker_ids=owned,
            trusted=user.trusted,
        )

    async def transfer(
        self, user: User, body: KudosTransferInput, idempotency_key: str | None
    ) -> KudosTransferResponse:
        """Move kudos to ``alias#id``; the same Idempotency-Key and body answer once, the same."""
        body_hash = hashlib.sha256(
            json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()
        if idempotency_key is not None:
            seen = self._transfers.get((user.id, idempotency_key))
            if seen is not None:
                if seen[0] != body_hash:
                    raise HordeError(
                        400,
                        "IdempotencyKeyConflict",
                        "This Idempotency-Key was used for another transfer; use a new key.",
                    )
                return KudosTransferResponse(transferred=seen[1])
        if user.anonymous:
            raise HordeError(
                400, "KudosTransferFromAnon", "The anonymous account cannot send kudos."
            )
        if body.amount < 0:
            raise HordeError(400, "NegativeKudosTransfer", "The amount must be positive.")
        if body.amount == 0:
            raise HordeError(400, "InvalidKudosTransferAmount", "The amount must be at least 1.")
        target = await self._target(body.username)
        if target.anonymous:
            raise HordeError(
                400, "KudosTransferToAnon", "Kudos cannot go to the anonymous account."
            )
        if target.id == user.id:
            raise HordeError(400, "KudosTransferToSelf", "You cannot send kudos to yourself.")
        if body.amount > user.kudos:
            raise HordeError(
                400,
                "KudosTransferNotEnough",
                f"Not enough kudos: you have {user.kudos:g}, asked to send {body.amount}.",
            )
        user.kudos = round(user.kudos - body.amount, 2)
        target.kudos = round(target.kudos + body.amount, 2)
        ops = [
            _update(tables.users, user.id, kudos=user.kudos),
            _update(tables.users, target.id, kudos=target.kudos),
        ]
        if idempotency_key is not None:
            now = time.time()
            self._transfers[(user.id, idempotency_key)] = (body_hash, float(body.amount), now)
            row = {
                "user_id": user.id,
                "key": idempotency_key,
                "body_hash": body_hash,
                "transferred": float(body.amount),
                "created": now,
            }
            ops.append(_insert(tables.transfers, [row]))
        await write(self._journal, *ops)
        return KudosTransferResponse(transferred=float(body.amount))

    async def _target(self, username: str) -> User:
        match = _TARGET.match(username.strip())
        target = None if match is None else await self._user_by_id(int(match["id"]))
        if (
            match is None
            or target is None
            or target.name.casefold() != match["name"].strip().casefold()
        ):
            raise HordeError(
                400, "InvalidTargetUsername", f"No user {username[:120]!r}; use the alias#id form."
            )
        return target

    # ---- requests -----------------------------------------------------------------------

    async def create_request(
        self, user: User, body: GenerationInput
    ) -> RequestAsync | DryRunResponse:
        """``generate/async``: validate the horde's rules, price it, queue it durably."""
        params = body.params
        if len(body.prompt.split()) > MAX_PROMPT_WORDS:
            raise HordeError(400, "InvalidPromptSize", "The prompt is over 7500 words; shorten it.")
        if body.style is not None:
            raise HordeError(
                404, "StyleNotFound", "The embedded horde has no styles; expand the style first."
            )
        unknown = [worker for worker in body.workers if worker not in self._workers]
        if unknown:
            raise HordeError(404, "WorkerNotFound", f"No worker with id {unknown[0][:64]!r}.")
        if upscaler_count(params) > 1:
            raise HordeError(
                400, "TooManyUpscalers", "Use at most one upscaler in post_processing."
            )
        await self._check_sources(body)
        cost = image_kudos(params)
        if body.dry_run:
            return DryRunResponse(kudos=round(cost * params.n, 2))
        waiting = sum(r.waiting for r in self._queue.values() if r.user_id == user.id)
        if waiting + params.n > self.settings.user_concurrency:
            raise HordeError(
                429,
                "TooManyPrompts",
                f"You have {waiting} images waiting; at most "
                f"{self.settings.user_concurrency} may wait at once.",
            )
        now = time.time()
        request = HordeRequest(
            id=str(uuid.uuid4()),
            user_id=user.id,
            input=body,
            seeds=image_seeds(params),
            created=now,
            expiry=now + self.settings.request_lifetime_s,
            priority=user.kudos,
            kudos_per_image=cost,
        )
        self._requests[request.id] = request
        self._queue[request.id] = request
        row = {
            "id": request.id,
            "user_id": user.id,
            "body": body.model_dump(mode="json"),
            "seeds": request.seeds,
            "created": now,
            "expiry": request.expiry,
            "priority": request.priority,
            "kudos_per_image": cost,
            "consumed": 0.0,
            "cancelled": False,
            "faulted": False,
        }
        await write(self._journal, _insert(tables.requests, [row]))
        if self._possible(request, now):
            return RequestAsync(id=request.id, kudos=round(cost))
        return RequestAsync(
            id=request.id,
            kudos=round(cost),
            message=NO_WORKER_MESSAGE,
            warnings=[WarningItem(code="NoAvailableWorker", message=NO_WORKER_MESSAGE)],
        )

    async def _check_sources(self, body: GenerationInput) -> None:
        if body.source_mask is not None and body.source_image is None:
            raise HordeError(
                400, "SourceMaskUnnecessary", "A source_mask needs a source_image; send both."
            )
        if body.source_image is None or body.source_image.startswith(("http://", "https://")):
            return
        source = await self._inspect(body.source_image, "source_image")
        if source.width > MAX_SOURCE_SIDE or source.height > MAX_SOURCE_SIDE:
            raise HordeError(
                400, "SourceImageResolutionExceeded", "The source image is over 3072×3072 pixels."
            )
        if body.source_mask is not None and not body.source_mask.startswith(
            ("http://", "https://")
        ):
            await self._inspect(body.source_mask, "source_mask")
        elif (
            body.source_mask is None
            and body.source_processing == "inpainting"
            and not source.has_alpha
        ):
            raise HordeError(
                400,
                "InpaintingMissingMask",
                "Inpainting needs a source_mask or a source image with transparency.",
            )

    @staticmethod
    async def _inspect(text: str, field: str) -> Any:
        try:
            return await asyncio.to_thread(lambda: inspect_source(decode_base64(text)))
        except ImageInvalid as exc:
            raise HordeError(
                400, "SourceImageUnreadable", f"{field} is not a readable base64 image or URL."
            ) from exc

    def _online(self, now: float) -> list[Worker]:
        stale = self.settings.worker_stale_s
        return [worker for worker in self._workers.values() if worker.online(now, stale)]

    def _possible(self, request: HordeRequest, now: float) -> bool:
        return any(serves(request.input.models, w.settings) for w in self._online(now))

    def _request(self, request_id: str) -> HordeRequest:
        request = self._requests.get(request_id)
        if request is None or request.expiry <= time.time():
            raise _not_found(request_id)
        return request

    def check(self, request_id: str) -> RequestStatusCheck:
        """``generate/check``: progress counts, queue estimate, and whether a worker can serve."""
        request = self._request(request_id)
        return RequestStatusCheck(**self._progress(request, time.time()))

    def _progress(self, request: HordeRequest, now: float) -> dict[str, Any]:
        waiting = request.waiting
        position = 0
        queued_mps = 0.0
        if waiting:
            ahead = sorted(self._queue.values(), key=_queue_order)
            for other in ahead:
                position += 1
                queued_mps += other.waiting * megapixelsteps(other.input.params)
                if other is request:
                    break
        queued_mps += request.processing * megapixelsteps(request.input.params)
        speed = NOMINAL_MPS_PER_S * max(1, len(self._online(now)))
        return {
            "finished": request.finished,
            "processing": request.processing,
            "restarted": request.restarted,
            "waiting": waiting,
            "done": request.done,
            "faulted": request.faulted,
            "wait_time": math.ceil(queued_mps / speed),
            "queue_position": position,
            "kudos": round(request.consumed, 2),
            "is_possible": self._possible(request, now),
        }

    async def status(self, request_id: str, links: Links) -> RequestStatusStable:
        """``generate/status``: progress plus finished images (URLs when ``r2``, else base64)."""
        request = self._request(request_id)
        progress = self._progress(request, time.time())
        generations = []
        for job in request.jobs:
            if job.state != "done":
                continue
            if request.input.r2:
                img = links.download(job.id)
            else:
                data = await self.images.read(job.id)
                img = "N/A" if data is None else base64.b64encode(data).decode()
            worker = self._workers.get(job.worker_id)
            generations.append(
                Generation(
                    img=img,
                    seed=job.seed,
                    id=job.id,
                    censored=job.censored,
                    worker_id=job.worker_id,
                    worker_name="" if worker is None else worker.name,
                    model=job.model,
                    state="ok",
                    gen_metadata=job.gen_metadata,
                )
            )
        return RequestStatusStable(**progress, generations=generations, shared=False)

    async def cancel(self, request_id: str, links: Links) -> RequestStatusStable:
        """``DELETE generate/status``: stop handing out its images; in-flight ones may finish."""
        request = self._request(request_id)
        if not request.cancelled:
            request.cancelled = True
            self._queue.pop(request.id, None)
            await write(self._journal, _update(tables.requests, request.id, cancelled=True))
        return await self.status(request_id, links)

    # ---- workers ------------------------------------------------------------------------

    async def pop(self, user: User, body: PopInput, links: Links) -> PopResponse:
        """``generate/pop``: the best queued request this worker can serve, or skip counts."""
        if user.anonymous:
            raise HordeError(
                403,
                "AnonForbiddenWorker",
                "Anonymous workers are not allowed; use your own API key.",
            )
        now = time.time()
        worker, ops = self._check_in(user, body, now)
        skipped: Counter[str] = Counter()
        chosen: tuple[HordeRequest, list[int]] | None = None
        for request in sorted(self._queue.values(), key=_queue_order):
            slots = request.free_slots()
            if not slots:
                del self._queue[request.id]
                continue
            requester = self._users.get(request.user_id)
            reason = skip_reason(
                request.input,
                body,
                worker_id=worker.id,
                worker_trusted=user.trusted,
                requester_kudos=0.0 if requester is None else requester.kudos,
                requester_anonymous=requester is None or requester.anonymous,
            )
            if reason is None:
                chosen = (request, slots)
                break
            skipped[reason] += 1
        if chosen is None:
            if ops:
                await write(self._journal, *ops)
            return PopResponse(id=None, ids=[], skipped=dict(skipped))
        request, slots = chosen
        params = request.input.params
        amount = 1 if request.input.disable_batching else min(body.amount, len(slots))
        ttl = job_ttl(params, minimum=self.settings.min_job_ttl_s, fixed=self.settings.job_ttl_s)
        if self.settings.job_ttl_s is None:
            ttl *= amount
        model = pick_model(request.input.models, body)
        jobs = [
            Job(
                id=str(uuid.uuid4()),
                request_id=request.id,
                idx=idx,
                worker_id=worker.id,
                model=model,
                state="processing",
                popped=now,
                deadline=now + ttl,
                seed=str(request.seeds[idx]),
            )
            for idx in slots[:amount]
        ]
        request.jobs.extend(jobs)
        self._jobs.update((job.id, job) for job in jobs)
        if amount == len(slots):
            self._queue.pop(request.id, None)
        request.expiry = now + self.settings.request_lifetime_s
        ops.append(_insert(tables.jobs, [_job_row(job) for job in jobs]))
        ops.append(_update(tables.requests, request.id, expiry=request.expiry))
        await write(self._journal, *ops)
        payload = params.model_dump(
            exclude={"steps", "n", "seed", "seed_variation"}, exclude_none=True
        )
        payload.update(
            prompt=request.input.prompt,
            ddim_steps=params.steps,
            n_iter=len(jobs),
            seed=request.seeds[jobs[0].idx],
            batch_size=1,
            use_nsfw_censor=not request.input.nsfw and request.input.censor_nsfw,
        )
        return PopResponse(
            id=jobs[0].id,
            ids=[job.id for job in jobs],
            model=model,
            payload=PopPayload.model_validate(payload),
            ttl=ttl,
            skipped=dict(skipped),
            source_image=request.input.source_image,
            source_processing=request.input.source_processing,
            source_mask=request.input.source_mask,
            r2_upload=links.upload(jobs[0].id),
            r2_uploads=[links.upload(job.id) for job in jobs],
        )

    def _check_in(self, user: User, body: PopInput, now: float) -> tuple[Worker, list[Op]]:
        worker = self._workers_by_name.get(body.name)
        settings = body.model_dump(mode="json")
        if worker is None:
            worker = Worker(str(uuid.uuid4()), body.name, user.id, now, now, 0.0, 0, body, now)
            self._workers[worker.id] = worker
            self._workers_by_name[worker.name] = worker
            row = {
                "id": worker.id,
                "name": worker.name,
                "user_id": user.id,
                "created": now,
                "last_pop": now,
                "kudos_earned": 0.0,
                "requests_fulfilled": 0,
                "settings": settings,
            }
            return worker, [_insert(tables.workers, [row])]
        if worker.user_id != user.id:
            raise HordeError(
                403,
                "WrongCredentials",
                f"The worker name {body.name[:120]!r} is another user's; choose another name.",
            )
        changed = worker.settings != body
        worker.settings = body
        worker.last_pop = now
        if not changed and now - worker.saved_pop < CHECKIN_DEBOUNCE_S:
            return worker, []
        worker.saved_pop = now
        return worker, [_update(tables.workers, worker.id, last_pop=now, settings=settings)]

    def _out_job(self, user: User, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise HordeError(404, "InvalidJobID", f"No job with id {job_id[:64]!r} is out.")
        worker = self._workers.get(job.worker_id)
        if worker is None or worker.user_id != user.id:
            raise HordeError(
                403, "WrongCredentials", "This job was given to another user's worker."
            )
        if job.state in ("done", "finishing", "faulted"):
            raise HordeError(400, "DuplicateGen", "This job was already submitted.")
        if job.state == "aborted":
            raise HordeError(
                400, "AbortedGen", "This job timed out and was given to another worker."
            )
        return job

    async def upload(self, job_id: str, data: bytes) -> None:
        """The R2 stand-in's PUT: store a job's image before its ``generation: "R2"`` submit."""
        job = self._jobs.get(job_id)
        if job is None:
            raise HordeError(404, "InvalidJobID", f"No job with id {job_id[:64]!r} is out.")
        if job.state != "processing":
            raise HordeError(400, "DuplicateGen", "This job is no longer accepting uploads.")
        try:
            await self.images.save(job.id, data)
        except ImageInvalid as exc:
            raise HordeError(400, "ImageValidationFailed", "The upload is not an image.") from exc

    async def image(self, job_id: str) -> bytes | None:
        """A finished job's WebP bytes (for the signed download link)."""
        job = self._jobs.get(job_id)
        if job is None or job.state != "done":
            return None
        return await self.images.read(job_id)

    async def submit(self, user: User, body: SubmitInput) -> SubmitResponse:
        """``generate/submit``: record a result (ok / censored) or a fault, and pay for it."""
        job = self._out_job(user, body.id)
        request = self._requests[job.request_id]
        now = time.time()
        if body.state == "faulted":
            job.state = "faulted"
            job.finished = now
            ops = [_job_update(job), *self._after_restart(request)]
            await write(self._journal, *ops)
            return SubmitResponse(reward=0.0)
        job.state = "finishing"
        try:
            await self._store_result(job, body.generation)
        except BaseException:
            job.state = "processing"
            raise
        worker = self._workers[job.worker_id]
        metadata = [entry.model_dump(mode="json", exclude_none=True) for entry in body.gen_metadata]
        flagged = any(entry["type"] == "censorship" for entry in metadata)
        if body.state in ("censored", "csam") and not flagged:
            metadata.append(
                {"type": "censorship", "value": "csam" if body.state == "csam" else "nsfw"}
            )
        censored = body.state in ("censored", "csam") or body.censored or flagged
        reward = request.kudos_per_image
        cost = 0.0 if censored else reward
        job.state = "done"
        job.finished = now
        job.censored = censored
        job.gen_metadata = metadata
        job.reward = reward
        job.seed = str(body.seed)
        requester = self._users.get(request.user_id)
        owner = self._users[worker.user_id]
        if requester is not None:
            requester.kudos = round(requester.kudos - cost, 2)
        request.consumed = round(request.consumed + cost, 2)
        owner.kudos = round(owner.kudos + reward, 2)
        worker.kudos_earned = round(worker.kudos_earned + reward, 2)
        worker.requests_fulfilled += 1
        ops = [
            _job_update(job),
            _update(tables.requests, request.id, consumed=request.consumed),
            _update(
                tables.workers,
                worker.id,
                kudos_earned=worker.kudos_earned,
                requests_fulfilled=worker.requests_fulfilled,
            ),
        ]
        for account in {id(u): u for u in (requester, owner) if u is not None}.values():
            ops.append(_update(tables.users, account.id, kudos=account.kudos))
        await write(self._journal, *ops)
        return SubmitResponse(reward=reward)

    async def _store_result(self, job: Job, generation: str) -> None:
        if generation == "R2":
            if not self.images.exists(job.id):
                raise HordeError(
                    400,
                    "ImageValidationFailed",
                    "generation is 'R2' but nothing was uploaded; PUT the WebP to r2_upload first.",
                )
            return
        try:
            await self.images.save(job.id, decode_base64(generation))
        except ImageInvalid as exc:
            raise HordeError(
                400, "ImageValidationFailed", "generation must be base64 image bytes or 'R2'."
            ) from exc

    def _after_restart(self, request: HordeRequest) -> list[Op]:
        if not request.faulted and request.restarted >= FAULTS_TO_FAIL:
            request.faulted = True
            self._queue.pop(request.id, None)
            return [_update(tables.requests, request.id, faulted=True)]
        if request.waiting:
            self._queue[request.id] = request
        return []

    # ---- status -------------------------------------------------------------------------

    def models(self, *, min_count: int | None, max_count: int | None) -> list[ActiveModel]:
        """``status/models``: models served by online workers or asked for by queued requests."""
        now = time.time()
        counts: Counter[str] = Counter()
        for worker in self._online(now):
            counts.update(set(worker_models(worker.settings)))
        jobs: Counter[str] = Counter()
        queued: dict[str, float] = {}
        for request in self._queue.values():
            waiting = request.waiting
            for name in set(request.input.models):
                jobs[name] += waiting
                queued[name] = queued.get(name, 0.0) + waiting * megapixelsteps(
                    request.input.params
                )
        rows = []
        for name in sorted(set(counts) | set(jobs)):
            count = counts[name]
            if (min_count is not None and count < min_count) or (
                max_count is not None and count > max_count
            ):
                continue
            speed = NOMINAL_MPS_PER_S * count
            rows.append(
                ActiveModel(
                    name=name,
                    count=count,
                    performance=speed,
                    queued=round(queued.get(name, 0.0), 2),
                    jobs=float(jobs[name]),
                    eta=math.ceil(queued.get(name, 0.0) / speed) if speed else 0,
                    type="image",
                )
            )
        return rows

    def workers(self, *, name: str | None = None) -> list[WorkerDetails]:
        """``GET /v2/workers``: every known worker (or the one named), online state and kudos."""
        now = time.time()
        found: Iterable[Worker] = self._workers.values()
        if name is not None:
            worker = self._workers_by_name.get(name)
            found = [] if worker is None else [worker]
        return [self._details(worker, now) for worker in found]

    def worker(self, worker_id: str) -> WorkerDetails:
        """``GET /v2/workers/{id}``."""
        worker = self._workers.get(worker_id)
        if worker is None:
            raise HordeError(404, "WorkerNotFound", f"No worker with id {worker_id[:64]!r}.")
        return self._details(worker, time.time())

    def _details(self, worker: Worker, now: float) -> WorkerDetails:
        settings = worker.settings
        owner = self._users.get(worker.user_id)
        return WorkerDetails(
            id=worker.id,
            name=worker.name,
            type="image",
            online=worker.online(now, self.settings.worker_stale_s),
            requests_fulfilled=worker.requests_fulfilled,
            kudos_rewards=worker.kudos_earned,
            uptime=int(max(0.0, worker.last_pop - worker.created)),
            models=worker_models(settings),
            nsfw=settings.nsfw,
            max_pixels=settings.max_pixels,
            threads=settings.threads,
            trusted=owner is not None and owner.trusted,
            bridge_agent=settings.bridge_agent,
            img2img=settings.allow_img2img,
            painting=settings.allow_painting,
            lora=settings.allow_lora,
        )

    def heartbeat_queue(self) -> int:
        """Images waiting, for the heartbeat."""
        return sum(request.waiting for request in self._queue.values())

    # ---- maintenance --------------------------------------------------------------------

    async def sweep(self) -> None:
        """Expire old requests, re-queue jobs past their TTL, forget old idempotency keys."""
        now = time.time()
        ops: list[Op] = []
        gone: list[str] = []
        for request in [r for r in self._requests.values() if r.expiry <= now]:
            del self._requests[request.id]
            self._queue.pop(request.id, None)
            for job in request.jobs:
                self._jobs.pop(job.id, None)
                gone.append(job.id)
            ops.append(_delete_request(request.id))
        for request in self._requests.values():
            timed_out = [
                job for job in request.jobs if job.state == "processing" and job.deadline <= now
            ]
            for job in timed_out:
                job.state = "aborted"
                ops.append(_job_update(job))
            if timed_out:
                ops.extend(self._after_restart(request))
        old = [key for key, seen in self._transfers.items() if seen[2] < now - IDEMPOTENCY_TTL_S]
        for user_id, key in old:
            del self._transfers[(user_id, key)]
            ops.append(_delete_transfer(user_id, key))
        if ops:
            await write(self._journal, *ops)
        await self.images.delete(gone)
        await self._journal.checkpoint()

    async def maintain(self) -> None:
        """Sweep every ``maintenance_interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.maintenance_interval_s)
            try:
                await self.sweep()
            except Exception:
                _log.exception("horde maintenance failed; retrying next interval")
