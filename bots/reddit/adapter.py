"""The Reddit adapter: polls the listened subreddits and the inbox, answers with image posts.

Listening is polling (Reddit has no push for bots): new comments of ``subreddits`` after a stored
``before`` cursor, then the unread inbox (mentions, replies to the bot, private messages), which
is marked read once the core took each item. A reply uploads the images as a post to the bot's own
subreddit and answers the user's comment with links; markers in the bot's texts and a store
cursor per post make a second ``send`` for the same generation post nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import praw.exceptions
import prawcore

from bots.deps import AdapterDeps
from bots.reddit import render
from bots.reddit.api import NotListed, RedditApi, Refused, classify
from bots.reddit.config import RedditConfig, Secrets
from bots.reddit.inbound import PLATFORM, Item, read_item
from bots.reddit.limits import LIMITS
from bots.reddit.render import PostedImages
from core.contract import DeliveryError, Inbox, PlatformLimits, Votes
from core.messages import AckKind, OutImage, Progress, Reply, ReplyTarget
from core.retrying import Backoff, Sleep, call_with_retries, poll_forever
from core.shaping import Post, shape

log = logging.getLogger(__name__)

T = TypeVar("T")


class RedditAdapter:
    """Reddit as a platform; also a ``ChallengeVenue`` (a post per entry, its score as votes)."""

    name = PLATFORM
    limits: PlatformLimits = LIMITS

    def __init__(
        self,
        config: RedditConfig,
        deps: AdapterDeps,
        secrets: Secrets,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._config = config
        self._deps = deps
        self._secrets = secrets
        self._sleep = sleep
        self._backoff = Backoff(first_s=config.retry_first_s, max_s=config.retry_max_s)
        # praw is not thread-safe: one thread makes every call, one at a time.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="praw")
        self._api: RedditApi | None = None
        self._listener: asyncio.Task[None] | None = None
        # One round at a time, also when a test or a command asks for one beside the listener.
        self._polling = asyncio.Lock()
        self._closed = False
        self._cursor_name = "comments_before:" + "+".join(
            sorted(s.casefold() for s in config.subreddits)
        )

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        """Log in, take the starting point of the subreddit stream, start polling."""
        self._api = RedditApi(self._config, self._secrets)
        me = await self._retrying(self._api.connect, "login")
        log.info("reddit: logged in as u/%s", me)
        if self._config.subreddits and await self._cursor() is None:
            # A fresh bot answers what comes after it started, not the subreddit's history.
            newest = await self._retrying(
                lambda: self._require_api().newest_comment(self._config.subreddits), "baseline"
            )
            await self._deps.store.set_cursor(PLATFORM, self._cursor_name, newest or "")
        self._listener = asyncio.create_task(self._listen(inbox), name="reddit-listener")

    async def stop(self) -> None:
        """Stop polling; idempotent. A praw call already running finishes in its thread."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Nothing: a comment edited every few seconds is noise on Reddit."""

    # ---- listening ---------------------------------------------------------------------------

    async def _listen(self, inbox: Inbox) -> None:
        await poll_forever(
            lambda: self.poll_once(inbox),
            interval_s=self._config.poll_interval_s,
            backoff=self._backoff,
            what="reddit: polling",
            sleep=self._sleep,
        )

    async def poll_once(self, inbox: Inbox) -> None:
        """One round: new subreddit comments, then the unread inbox."""
        async with self._polling:
            await self._poll(inbox)

    async def _poll(self, inbox: Inbox) -> None:
        api = self._require_api()
        if self._config.subreddits:
            before = await self._cursor()
            items = await self._retrying(
                lambda: api.new_comments(self._config.subreddits, before or None), "comments"
            )
            for item in items:
                await self._handle(inbox, item)
                await self._deps.store.set_cursor(PLATFORM, self._cursor_name, item.fullname)
        unread = await self._retrying(api.unread, "inbox")
        taken: list[str] = []
        try:
            for item in unread:
                await self._handle(inbox, item)
                taken.append(item.fullname)
        finally:
            if taken:
                await self._retrying(lambda: api.mark_read(taken), "mark read")

    async def _handle(self, inbox: Inbox, item: Item) -> None:
        if time.time() - item.created_utc > self._config.max_age_hours * 3600:
            return
        decision = read_item(item, bot=self._require_api().username, config=self._config)
        if decision is None:
            return
        if isinstance(decision, str):
            if await self._deps.store.claim_event(PLATFORM, item.fullname):
                await self._answer(item.fullname, decision)
            return
        ack = await inbox.submit(decision)
        if ack.kind in (AckKind.REJECTED, AckKind.ANSWERED) and ack.message:
            await self._answer(item.fullname, ack.message)

    async def _answer(self, parent: str, text: str) -> None:
        """Post a short answer; a failure is logged, never raised into the listener."""
        mark = render.token(parent.partition("_")[2] or parent)
        body = render.answer_comment(text, mark)
        try:
            await self._retrying(
                lambda: self._require_api().reply_once(parent, body, mark), "answer"
            )
        except Exception:
            log.exception("reddit: could not answer %s", parent)

    # ---- replying ----------------------------------------------------------------------------

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Upload the images as a post (once), then reply with links (once); return the reply id."""
        parent = str(target.data["thing"])
        mark = render.token(reply.generation_id or parent.partition("_")[2])
        api = self._require_api()
        try:
            existing = await self._retrying(lambda: api.own_reply_with(parent, mark), "look up")
            if existing is not None:
                return existing
            posts = [p for p in shape(reply, LIMITS) if p.images]
            posted = [
                await self._image_post(reply, post, f"{mark}:{index}", index, len(posts))
                for index, post in enumerate(posts)
            ]
            text = render.result_comment(reply, posted, mark, self._config.image_subreddit)
            return await self._retrying(lambda: api.reply_once(parent, text, mark), "reply")
        except Refused as exc:
            raise DeliveryError(str(exc), retryable=False) from exc
        except (prawcore.PrawcoreException, praw.exceptions.PRAWException, NotListed) as exc:
            retry = classify(exc).retry
            raise DeliveryError(f"Reddit did not take the reply: {exc}", retryable=retry) from exc

    async def _image_post(
        self, reply: Reply, post: Post, mark: str, index: int, parts: int
    ) -> PostedImages:
        """The post for one chunk of images: remembered, found by its marker, or made now."""
        store = self._deps.store
        key = f"post:{mark}"
        kept = await store.cursor(PLATFORM, key)
        if kept:
            return PostedImages.from_json(json.loads(kept))
        api = self._require_api()
        found = await self._retrying(lambda: api.own_post_with(mark), "look up post")
        if found is None:
            title = render.post_title(reply, index, parts)
            body = render.post_body(reply, mark)
            images = list(zip(_data(post.images), render.gallery_captions(post), strict=True))
            nsfw = render.is_nsfw(reply)
            found = await self._retrying(
                lambda: api.submit_images(
                    self._config.image_subreddit, title, body, images, nsfw=nsfw, mark=mark
                ),
                "image post",
            )
        await store.set_cursor(PLATFORM, key, json.dumps(found.to_json()))
        return found

    # ---- challenge venue ---------------------------------------------------------------------

    async def announce(self, channel: str, text: str, images: tuple[OutImage, ...] = ()) -> str:
        """A post in subreddit ``channel``: the first line as title, all of it as text."""
        api = self._require_api()
        title = render.clip_title(text)
        if not images:
            return await self._retrying(lambda: api.submit_text(channel, title, text), "announce")
        mark = render.token(f"{time.time_ns():x}"[-8:])
        body = f"{text}\n\n^({mark})"
        pairs = [(i.data, render.clip_caption(i.alt_text)) for i in images[: LIMITS.max_images]]
        nsfw = any(i.nsfw for i in images)
        found = await self._retrying(
            lambda: api.submit_images(channel, title, body, pairs, nsfw=nsfw, mark=mark),
            "announce",
        )
        return found.fullname

    async def votes(self, target: ReplyTarget, message_id: str) -> Votes:
        """The post's or comment's net score: Reddit does not tell who voted, only the sum."""
        api = self._require_api()
        return Votes(score=await self._retrying(lambda: api.score(message_id), "votes"))

    # ---- plumbing ----------------------------------------------------------------------------

    async def _retrying(self, call: Callable[[], T], what: str) -> T:
        if self._closed:
            # The service may still try a delivery while the bot shuts down; it keeps the reply.
            raise DeliveryError("the Reddit adapter is stopped")
        loop = asyncio.get_running_loop()

        async def attempt() -> T:
            return await loop.run_in_executor(self._executor, call)

        return await call_with_retries(
            attempt,
            classify,
            attempts=self._config.retry_attempts,
            backoff=self._backoff,
            what=f"reddit {what}",
            sleep=self._sleep,
        )

    def _require_api(self) -> RedditApi:
        if self._api is None:
            # The service resumes stored replies before the adapters start; it tries again.
            raise DeliveryError("the Reddit adapter is not started yet")
        return self._api

    async def _cursor(self) -> str | None:
        return await self._deps.store.cursor(PLATFORM, self._cursor_name)


def _data(images: tuple[OutImage, ...]) -> list[bytes]:
    return [image.data for image in images]
