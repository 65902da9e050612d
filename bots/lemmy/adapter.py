"""The Lemmy adapter: polls mentions and replies to the bot, answers with comments.

A notification is marked read only after the core took it (accepted, answered, refused or known
as a duplicate), so a crash before that reads it again and the core's dedupe drops the copy.
Results are posted once: before each comment or gallery post the bot looks for one it already
made with the generation's marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable

import httpx

from bots.deps import AdapterDeps
from bots.lemmy import render
from bots.lemmy.client import LemmyClient, LemmyError, classify
from bots.lemmy.config import LemmyConfig
from bots.lemmy.inbound import PLATFORM, Notice, to_invocation
from bots.lemmy.limits import LIMITS
from bots.lemmy.wire import Community
from core.contract import DeliveryError, Inbox, PlatformLimits, Votes
from core.messages import AckKind, OutImage, Progress, Reply, ReplyTarget
from core.retrying import Backoff, call_with_retries, poll_forever
from core.shaping import Post, shape

log = logging.getLogger(__name__)

LOGIN_IN_PUBLIC = (
    "never post your AI Horde key in a public comment: delete that comment now; "
    "log in by direct message on another platform the bot serves"
)
_EXTENSIONS = {"image/webp": "webp", "image/png": "png", "image/jpeg": "jpg"}


class LemmyAdapter:
    """Satisfies ``core.contract.Adapter`` and ``ChallengeVenue`` for one Lemmy account."""

    name = PLATFORM
    limits: PlatformLimits = LIMITS

    def __init__(
        self,
        config: LemmyConfig,
        deps: AdapterDeps,
        client: LemmyClient,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._config = config
        self._deps = deps
        self._client = client
        self._backoff = backoff or Backoff(first_s=2.0, max_s=120.0)
        self._poller: asyncio.Task[None] | None = None
        self._communities: dict[str, Community] = {}
        self._stopped = False
        self._sending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        """Check the server's version, log in, and start polling."""
        await self._client.check_version()
        await self._client.login()
        self._poller = asyncio.create_task(self._poll_loop(inbox), name="lemmy-poller")

    async def stop(self) -> None:
        """Stop polling and close the connection pool; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        # Sends already under way finish first; new ones are refused (the service keeps them).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=30)
        await self._client.aclose()

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Lemmy gets no progress comments: one answer per request keeps threads readable."""

    # ---- inbound ---------------------------------------------------------------------------

    async def _poll_loop(self, inbox: Inbox) -> None:
        await poll_forever(
            lambda: self.poll_once(inbox),
            interval_s=self._config.poll_interval_s,
            backoff=self._backoff,
            what=f"polling {self._config.base_url}",
        )

    async def poll_once(self, inbox: Inbox) -> int:
        """Read unread mentions and replies once and hand each to the core; returns how many."""
        unread_only = self._config.mark_read
        mentions = await self._client.mentions(unread_only=unread_only)
        replies = await self._client.replies(unread_only=unread_only)
        notices = [Notice("mention", m.person_mention.id, m) for m in mentions]
        notices += [Notice("reply", r.comment_reply.id, r) for r in replies]
        fresh = [n for n in notices if n.notice_id > await self._cursor(n.kind)]
        fresh.sort(key=lambda n: n.view.comment.id)
        for notice in fresh:
            try:
                await self._handle(inbox, notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad comment must not stop the others; it stays unread and comes back.
                log.exception("lemmy %s %d failed", notice.kind, notice.notice_id)
        return len(fresh)

    async def _handle(self, inbox: Inbox, notice: Notice) -> None:
        invocation = to_invocation(notice.view, self._config)
        if invocation is None:
            await self._done(notice)
            return
        target = invocation.target
        if invocation.command == "login":
            # Never to the core: a key posted in public is spent, and must not be echoed.
            if await self._deps.store.claim_event(PLATFORM, invocation.event_id):
                await self._answer(target, LOGIN_IN_PUBLIC, f"answer-{invocation.event_id}")
            await self._done(notice)
            return
        ack = await inbox.submit(invocation)
        if ack.kind in (AckKind.ANSWERED, AckKind.REJECTED) and ack.message:
            try:
                await self._answer(target, ack.message, f"answer-{invocation.event_id}")
            except (LemmyError, httpx.TransportError):
                # The core has recorded the event: a retry would be a duplicate and post nothing.
                log.exception("could not post the answer to %s", invocation.event_id)
        await self._done(notice)

    async def _done(self, notice: Notice) -> None:
        if self._config.mark_read:
            if notice.kind == "mention":
                await self._client.mark_mention_read(notice.notice_id)
            else:
                await self._client.mark_reply_read(notice.notice_id)
        if notice.notice_id > await self._cursor(notice.kind):
            await self._deps.store.set_cursor(
                PLATFORM, f"last_{notice.kind}", str(notice.notice_id)
            )

    async def _cursor(self, kind: str) -> int:
        if self._config.mark_read:
            return 0  # unread_only already leaves out what was handled
        value = await self._deps.store.cursor(PLATFORM, f"last_{kind}")
        return int(value) if value else 0

    # ---- outbound --------------------------------------------------------------------------

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Post the result (or error) under the user's comment; return the comment id."""
        if self._stopped:
            raise DeliveryError("the lemmy adapter is stopping")
        self._sending += 1
        self._idle.clear()
        try:
            return await self._send(target, reply)
        except LemmyError as exc:
            raise DeliveryError(str(exc), retryable=classify(exc).retry) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"lemmy unreachable: {exc}") from exc
        finally:
            self._sending -= 1
            if not self._sending:
                self._idle.set()

    async def _send(self, target: ReplyTarget, reply: Reply) -> str:
        key = reply.generation_id or f"answer-{target.data['comment_id']}"
        posts = shape(reply, LIMITS)
        if reply.error:
            return await self._answer(target, posts[0].text, key)
        spoiler = any(image.nsfw for image in reply.images)
        uploads = _Uploads(self._client)
        gallery = await self._crosspost(reply, posts, key, spoiler, uploads)
        ids = []
        for number, post in enumerate(posts, start=1):
            part = key if number == 1 else f"{key}.{number}"

            async def content(
                post: Post = post, part: str = part, first: bool = number == 1
            ) -> str:
                images = [(await uploads.url(image), image.alt_text) for image in post.images]
                return render.result_comment(
                    post.text,
                    images,
                    spoiler=spoiler,
                    key=part,
                    gallery_url=gallery if first else None,
                )

            ids.append(await self._comment_once(target, part, content))
        return ids[0]

    async def _answer(self, target: ReplyTarget, text: str, key: str) -> str:
        async def content() -> str:
            return render.answer_comment(text, key)

        return await self._comment_once(target, key, content)

    async def _comment_once(
        self, target: ReplyTarget, key: str, content: Callable[[], Awaitable[str]]
    ) -> str:
        """Post a reply to the target's comment unless one with ``key`` is already there.

        Each try looks first: a comment the server made before its answer got lost (a timeout, a
        5xx after the write) is found instead of posted twice.
        """
        post_id, parent_id = int(target.data["post_id"]), int(target.data["comment_id"])
        found = await self._find_comment(post_id, parent_id, key)
        if found is not None:
            return found
        text = await content()

        async def once() -> str:
            again = await self._find_comment(post_id, parent_id, key)
            if again is not None:
                return again
            view = await self._client.create_comment(
                post_id, text, parent_id=parent_id, retry=False
            )
            return str(view.comment.id)

        return await call_with_retries(once, classify, backoff=self._backoff, what="lemmy comment")

    async def _find_comment(self, post_id: int, parent_id: int, key: str) -> str | None:
        for view in await self._client.comments(post_id=post_id, parent_id=parent_id):
            if (
                view.creator.name.casefold() == self._config.username.casefold()
                and view.comment.parent_id == parent_id
                and render.has_marker(view.comment.content, key)
            ):
                return str(view.comment.id)
        return None

    async def _crosspost(
        self, reply: Reply, posts: list[Post], key: str, spoiler: bool, uploads: _Uploads
    ) -> str | None:
        """The result as a post in the gallery community, once; its URL, or ``None``."""
        gallery = self._config.gallery_community
        if not gallery or not reply.images:
            return None
        if spoiler and not self._config.nsfw_allowed_in(gallery):
            return None
        community = await self._community(gallery)
        for view in await self._client.posts(community.id):
            if view.creator.name.casefold() == self._config.username.casefold() and (
                render.has_marker(view.post.body or "", key)
            ):
                return f"{self._client.base_url}/post/{view.post.id}"
        images = [
            (await uploads.url(image), image.alt_text) for post in posts for image in post.images
        ]
        body = render.result_comment(posts[0].text, images, spoiler=spoiler, key=key)
        title = render.post_title(str(reply.metadata.get("prompt") or ""), posts[0].text)
        made = await self._client.create_post(
            community.id, title, body=body, url=images[0][0] if images else None, nsfw=spoiler
        )
        return f"{self._client.base_url}/post/{made.post.id}"

    async def _community(self, name: str) -> Community:
        if name not in self._communities:
            self._communities[name] = await self._client.community(name)
        return self._communities[name]

    # ---- challenge venue --------------------------------------------------------------------

    async def announce(self, channel: str, text: str, images: tuple[OutImage, ...] = ()) -> str:
        """A new post in the community ``channel``; returns the post id."""
        community = await self._community(channel)
        uploads = _Uploads(self._client)
        pairs = [(await uploads.url(image), image.alt_text) for image in images]
        title, body = render.announcement(text, pairs)
        made = await self._client.create_post(
            community.id, title, body=body, url=pairs[0][0] if pairs else None
        )
        return str(made.post.id)

    async def votes(self, target: ReplyTarget, message_id: str) -> Votes:
        """Who upvoted the comment ``message_id``, the bot itself left out.

        Lemmy shows a comment's voters to the community's moderators and admins only, so the bot
        account must moderate the challenge community.
        """
        likes = await self._client.comment_likes(int(message_id))
        others = [v for v in likes if v.creator.name.casefold() != self._config.username.casefold()]
        voters = frozenset(v.creator.actor_id or v.creator.name for v in others if v.score > 0)
        return Votes(voters=voters, score=sum(v.score for v in others))


class _Uploads:
    """Each image uploaded once per send, shared by the reply and the gallery post."""

    def __init__(self, client: LemmyClient) -> None:
        self._client = client
        self._urls: dict[str, str] = {}

    async def url(self, image: OutImage) -> str:
        digest = hashlib.sha256(image.data).hexdigest()
        if digest not in self._urls:
            extension = _EXTENSIONS.get(image.mime_type, "bin")
            self._urls[digest] = await self._client.upload_image(
                image.data, image.mime_type, f"{digest[:16]}.{extension}"
            )
        return self._urls[digest]
