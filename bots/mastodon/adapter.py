"""The Mastodon adapter: mentions in, replies with media out, exactly once.

Mentions arrive by the user stream while it is healthy and by polling the notifications while it
is not; at start a catch-up reads what came in while the bot was down. All three feed one queue
that a single task drains in order, so the cursor (the newest notification handled, kept in the
store) only moves past a mention once it has been handed to the core. The core dedupes by status
id, so a mention seen by the stream and by a poll is answered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bots.deps import AdapterDeps
from bots.mastodon.api import MastodonApi
from bots.mastodon.config import VISIBILITIES, MastodonConfig
from bots.mastodon.inbound import PLATFORM, id_order, is_public_login, parse_mention
from bots.mastodon.limits import LIMITS
from bots.mastodon.render import (
    StatusPlan,
    idempotency_key,
    plan_answer,
    plan_error,
    plan_reply,
    reply_visibility,
)
from bots.mastodon.stream import MentionStream
from core.contract import DeliveryError, Inbox, PlatformLimits, Votes
from core.messages import AckKind, Invocation, OutImage, Progress, Reply, ReplyTarget
from core.retrying import Backoff
from core.shaping import shape

log = logging.getLogger(__name__)

PUBLIC_LOGIN = (
    "never send your AI Horde key in a public post: send /login KEY to me in a direct message "
    "(visibility: mentioned people only), and delete this post"
)
# The same refusal (numbers aside) to the same user within this window is said once.
REFUSAL_QUIET_S = 600.0
SEEN_KEPT = 5000
TICK_S = 0.25
STOP_WAIT_S = 10.0
_DIGITS = re.compile(r"\d+")
_SWEEP = object()


class MastodonAdapter:
    """One bot account on one Mastodon (or compatible) server."""

    name = PLATFORM
    limits: PlatformLimits = LIMITS

    def __init__(
        self,
        config: MastodonConfig,
        deps: AdapterDeps,
        *,
        api_factory: Callable[[MastodonConfig], MastodonApi] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._deps = deps
        self._api_factory = api_factory or (lambda c: MastodonApi(c, c.token()))
        self._clock = clock
        self._api: MastodonApi | None = None
        self._me_id = ""
        self._cursor_name = ""
        self._cursor: str | None = None
        self._last_public: float | None = None
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._sweep_queued = False
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._refused: dict[str, tuple[str, float]] = {}
        self._stream: MentionStream | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Held while one mention or sweep is handled: stop waits for it, so a mention handed to
        # the core also has its cursor step stored.
        self._busy = asyncio.Lock()
        self.sweeps = 0

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        """Log in, note the last public post, queue the catch-up, start listening."""
        api = self._api = self._api_factory(self._config)
        me = await api.me()
        self._me_id = str(me["id"])
        self._cursor_name = f"last_notification:{self._me_id}"
        self._cursor = await self._deps.store.cursor(PLATFORM, self._cursor_name)
        await self._note_last_public_post()
        log.info("mastodon: listening as @%s on %s", me.get("acct"), self._config.api_base_url)
        self._request_sweep()
        self._tasks.append(asyncio.create_task(self._pump(inbox), name="mastodon-pump"))
        if self._config.streaming:
            self._stream = MentionStream(
                api.client,
                loop=asyncio.get_running_loop(),
                on_notification=self._queue.put_nowait,
                stale_s=self._config.stream_stale_s,
                backoff=Backoff(first_s=1.0, max_s=60.0),
            )
            self._stream.start()
        self._tasks.append(asyncio.create_task(self._poll_timer(), name="mastodon-poll"))

    async def stop(self) -> None:
        """Stop listening and close connections; idempotent."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._busy.acquire(), STOP_WAIT_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._busy.locked():
            self._busy.release()
        if self._api is not None:
            await asyncio.to_thread(self._api.close)

    @property
    def stream_healthy(self) -> bool:
        """Whether mentions currently come by the stream (else by polling)."""
        return self._stream is not None and self._stream.healthy

    # ---- sending -------------------------------------------------------------------------

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Post the reply under the mention; returns the first status's id."""
        data = target.data
        now = self._clock()
        visibility = reply_visibility(
            str(data.get("visibility", "public")),
            last_public_post=self._last_public,
            now=now,
            window_s=self._config.public_cooldown_minutes * 60,
        )
        if visibility == "public" and not reply.error:
            # Claimed before posting: two replies finishing together do not both go public.
            self._last_public = now
        plans = plan_reply(
            reply, data, visibility=visibility, content_warning=self._config.content_warning
        )
        ids = await self._deliver(plans, in_reply_to=str(data.get("status_id") or "") or None)
        return ids[0]

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Mastodon shows no progress: an edited or extra status per step would be noise."""

    # ---- challenge venue -----------------------------------------------------------------

    async def announce(self, channel: str, text: str, images: tuple[OutImage, ...] = ()) -> str:
        """Post a new status with visibility ``channel`` (public, unlisted …); returns its id."""
        if channel not in VISIBILITIES:
            wanted = ", ".join(VISIBILITIES)
            raise ValueError(f"a Mastodon channel is a visibility: one of {wanted}")
        posts = shape(Reply(None, text=text, images=images), LIMITS)
        fingerprint = [channel, text, *(hashlib.sha256(i.data).hexdigest() for i in images)]
        nsfw = any(image.nsfw for image in images)
        plans = [
            StatusPlan(
                text=post.text,
                visibility=channel,
                idempotency_key=idempotency_key("announce", *fingerprint, str(index)),
                media=post.images,
                sensitive=nsfw,
                spoiler_text=self._config.content_warning if nsfw else "",
            )
            for index, post in enumerate(posts)
        ]
        if channel == "public":
            self._last_public = self._clock()
        return (await self._deliver(plans, in_reply_to=None))[0]

    async def votes(self, target: ReplyTarget, message_id: str) -> Votes:
        """The accounts that favourited the status, the bot itself left out."""
        try:
            accounts = await self._require_api().favourited_by(message_id)
        except Exception as exc:
            raise self._delivery_error(exc) from exc
        voters = {str(account["id"]) for account in accounts} - {self._me_id}
        return Votes(voters=frozenset(voters))

    # ---- mentions in ---------------------------------------------------------------------

    def _request_sweep(self) -> None:
        if not self._sweep_queued:
            self._sweep_queued = True
            self._queue.put_nowait(_SWEEP)

    async def _poll_timer(self) -> None:
        """Poll while the stream is off or unhealthy; sweep once whenever it becomes healthy."""
        was_healthy = False
        last_poll = self._clock()
        while True:
            await asyncio.sleep(TICK_S)
            healthy = self.stream_healthy
            now = self._clock()
            if healthy and not was_healthy:
                # What arrived between the last poll and the subscription going live.
                self._request_sweep()
                last_poll = now
            elif not healthy and now - last_poll >= self._config.poll_interval_s:
                self._request_sweep()
                last_poll = now
            was_healthy = healthy

    async def _pump(self, inbox: Inbox) -> None:
        while True:
            item = await self._queue.get()
            try:
                async with self._busy:
                    if item is _SWEEP:
                        self._sweep_queued = False
                        await self._sweep(inbox)
                    elif isinstance(item, Mapping):
                        await self._handle(inbox, item)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad notification or a platform outage must not end the listener.
                what = "a sweep" if item is _SWEEP else "a mention"
                log.exception("mastodon: handling %s failed", what)

    async def _sweep(self, inbox: Inbox) -> None:
        self.sweeps += 1
        found = await self._require_api().mentions_after(self._cursor)
        oldest = datetime.now(UTC) - timedelta(minutes=self._config.catch_up_max_age_minutes)
        for notification in sorted(found, key=lambda n: id_order(str(n["id"]))):
            await self._handle(inbox, notification, not_before=oldest)

    async def _handle(
        self, inbox: Inbox, notification: Mapping[str, Any], *, not_before: datetime | None = None
    ) -> None:
        notification_id = str(notification.get("id", ""))
        invocation = parse_mention(
            notification, bot_account_id=self._me_id, nsfw_allowed=self._config.nsfw_allowed
        )
        if invocation is not None and invocation.event_id not in self._seen:
            if not_before is not None and invocation.received_at < not_before:
                log.info("mastodon: skipping stale mention %s", invocation.event_id)
            else:
                await self._answer(inbox, invocation)
            self._remember(invocation.event_id)
        await self._advance_cursor(notification_id)

    async def _answer(self, inbox: Inbox, invocation: Invocation) -> None:
        data = invocation.target.data
        in_reply_to = str(data["status_id"])
        if is_public_login(invocation):
            # The key is never read: the event is only claimed, so a redelivery says nothing.
            if await self._deps.store.claim_event(PLATFORM, invocation.event_id):
                plan = plan_error(PUBLIC_LOGIN, data, key=invocation.event_id)
                await self._post_answer([plan], in_reply_to)
            return
        ack = await inbox.submit(invocation)
        if ack.kind is AckKind.ANSWERED and ack.message:
            plans = plan_answer(ack.message, data, key=invocation.event_id)
            await self._post_answer(plans, in_reply_to)
        elif ack.kind is AckKind.REJECTED and ack.message:
            if self._repeated_refusal(invocation.user.user_id, ack.message):
                log.info("mastodon: not repeating a refusal to %s", invocation.user.user_id)
                return
            plan = plan_error(ack.message, data, key=invocation.event_id)
            await self._post_answer([plan], in_reply_to)
        elif ack.kind is AckKind.ACCEPTED and ack.message:
            log.info("mastodon: %s accepted with notes: %s", invocation.event_id, ack.message)

    def _repeated_refusal(self, user_id: str, message: str) -> bool:
        now = self._clock()
        shape_of = _DIGITS.sub("#", message)
        earlier = self._refused.get(user_id)
        self._refused[user_id] = (shape_of, now)
        return earlier is not None and earlier[0] == shape_of and now - earlier[1] < REFUSAL_QUIET_S

    async def _post_answer(self, plans: list[StatusPlan], in_reply_to: str) -> None:
        try:
            await self._deliver(plans, in_reply_to=in_reply_to)
        except DeliveryError as exc:
            log.error("mastodon: could not post an answer under %s: %s", in_reply_to, exc)

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        while len(self._seen) > SEEN_KEPT:
            self._seen.popitem(last=False)

    async def _advance_cursor(self, notification_id: str) -> None:
        if not notification_id:
            return
        if self._cursor is not None and id_order(notification_id) <= id_order(self._cursor):
            return
        self._cursor = notification_id
        await self._deps.store.set_cursor(PLATFORM, self._cursor_name, notification_id)

    # ---- posting -------------------------------------------------------------------------

    async def _deliver(self, plans: list[StatusPlan], *, in_reply_to: str | None) -> list[str]:
        """Post a thread of statuses; each after the first answers the one before it."""
        api = self._require_api()
        posted: list[str] = []
        parent = in_reply_to
        try:
            for plan in plans:
                media_ids = [await api.upload(image, i) for i, image in enumerate(plan.media)]
                status = await api.post(plan, in_reply_to=parent, media_ids=media_ids)
                parent = str(status["id"])
                posted.append(parent)
        except Exception as exc:
            raise self._delivery_error(exc) from exc
        return posted

    def _delivery_error(self, exc: Exception) -> DeliveryError:
        retryable = self._require_api().classify(exc).retry
        return DeliveryError(f"mastodon: {type(exc).__name__}: {exc}"[:300], retryable=retryable)

    async def _note_last_public_post(self) -> None:
        """After a restart, the public-post window still counts from the last public status."""
        try:
            statuses = await self._require_api().recent_statuses(self._me_id)
        except Exception as exc:
            log.warning("mastodon: could not read the bot's own statuses: %s", exc)
            return
        for status in statuses:
            if status.get("visibility") != "public":
                continue
            created = status.get("created_at")
            if isinstance(created, datetime):
                age = (datetime.now(UTC) - _aware(created)).total_seconds()
                self._last_public = self._clock() - max(age, 0.0)
            return

    def _require_api(self) -> MastodonApi:
        if self._api is None:
            raise RuntimeError("the Mastodon adapter is not started")
        return self._api


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
