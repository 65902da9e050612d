"""Posting to Discord with retries: the interaction token first, the channel when it is dead.

An interaction token lives 15 minutes; a slow generation is then delivered as a channel message
that mentions the requester. Every call is retried on 429 and 5xx (discord.py retries its own
429s on a real connection; the webhook and the test peer surface them), and a channel post first
looks for the bot's earlier post of the same generation so a retry after a crash posts once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import discord
from discord.http import handle_message_parameters
from discord.webhook.async_ import async_context

from bots.discord.config import DiscordConfig
from bots.discord.render import MARKER, Rendered
from core.contract import DeliveryError
from core.retrying import Backoff, Verdict, call_with_retries, http_verdict

log = logging.getLogger(__name__)
T = TypeVar("T")

# Discord's answers for a token that no longer works (expired, unknown, message gone).
DEAD_TOKEN_CODES = frozenset({10062, 10015, 10008, 50027})
HISTORY_LOOKBACK = 50


def classify(exc: BaseException) -> Verdict:
    """429, 5xx and dropped connections are worth another try; other refusals are final."""
    if isinstance(exc, discord.HTTPException):
        retry_after = getattr(exc, "retry_after", None)
        headers = getattr(exc.response, "headers", None) or {}
        if retry_after is None and hasattr(headers, "get"):
            retry_after = headers.get("Retry-After")
        return http_verdict(exc.status, retry_after)
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        return Verdict(True)
    return Verdict(False)


def token_is_dead(exc: BaseException) -> bool:
    """Whether a webhook call failed because the interaction token cannot be used any more."""
    if not isinstance(exc, discord.HTTPException):
        return False
    return exc.status == 401 or exc.code in DEAD_TOKEN_CODES


class Poster:
    """REST calls of one adapter, each retried with backoff and turned into ``DeliveryError``."""

    def __init__(self, client: discord.Client, config: DiscordConfig) -> None:
        self._client = client
        self._attempts = config.send_attempts
        self._backoff = Backoff(first_s=config.retry_first_seconds, max_s=30.0)

    async def call(self, make: Callable[[], Awaitable[T]], what: str) -> T:
        """``make()`` retried; a final failure raises the last exception as it came."""
        return await call_with_retries(
            make, classify, attempts=self._attempts, backoff=self._backoff, what=f"discord {what}"
        )

    async def deliver(self, data: dict[str, Any], posts: list[Rendered]) -> str:
        """Post a result to its interaction, else to its channel; the first message's id."""
        try:
            if data.get("kind") == "interaction" and data.get("token"):
                try:
                    return await self._by_token(data, posts)
                except discord.HTTPException as exc:
                    if not token_is_dead(exc):
                        raise
                    log.info(
                        "discord: interaction token gone (%s); posting to the channel", exc.code
                    )
            return await self._to_channel(data, posts)
        except discord.HTTPException as exc:
            retry = classify(exc).retry
            raise DeliveryError(
                f"discord {exc.status} {exc.code}: {exc.text}"[:200], retryable=retry
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"discord unreachable: {exc}"[:200]) from exc

    def webhook(self, data: dict[str, Any]) -> discord.Webhook:
        """The interaction's followup webhook, rebuilt from stored ids (works after a restart)."""
        return discord.Webhook.partial(
            int(data["application_id"]), str(data["token"]), client=self._client
        )

    async def edit_original(self, data: dict[str, Any], post: Rendered) -> int:
        """Replace the interaction's first response with ``post``; returns its message id."""

        async def edit() -> int:
            return await self._patch_original(
                data,
                content=post.content or None,
                embed=post.embed,
                attachments=post.files(),
                view=post.view(),
            )

        return await self.call(edit, "edit of the interaction response")

    async def _patch_original(self, data: dict[str, Any], **fields: Any) -> int:
        """PATCH ``/webhooks/{app}/{token}/messages/@original``, as ``Interaction`` does it.

        ``Webhook.edit_message`` cannot name ``@original`` (it quotes the ``@``); the webhook
        adapter has the call for it, and the webhook gives it the client's session.
        """
        hook = self.webhook(data)
        with handle_message_parameters(**fields) as params:
            payload = await async_context.get().edit_original_interaction_response(
                int(data["application_id"]),
                str(data["token"]),
                session=hook.session,
                proxy=hook.proxy,
                proxy_auth=hook.proxy_auth,
                payload=params.payload,
                multipart=params.multipart,
                files=params.files,
            )
        return int(payload["id"])

    async def edit_embed(self, data: dict[str, Any], embed: discord.Embed) -> None:
        """Replace the interaction response's embed (progress); one try, no retries."""
        await self._patch_original(data, embed=embed)

    async def _by_token(self, data: dict[str, Any], posts: list[Rendered]) -> str:
        first = await self.edit_original(data, posts[0])
        hook = self.webhook(data)
        for post in posts[1:]:

            async def follow(post: Rendered = post) -> discord.WebhookMessage:
                return await hook.send(
                    content=post.content or discord.utils.MISSING,
                    files=post.files(),
                    wait=True,
                )

            await self.call(follow, "followup")
        return str(first)

    async def _to_channel(self, data: dict[str, Any], posts: list[Rendered]) -> str:
        channel = self._client.get_partial_messageable(int(data["channel_id"]))
        mention = f"<@{data['user_id']}>"
        earlier = await self._posted_before(channel, posts[0].generation_id)
        if earlier is not None:
            return earlier
        reference = None
        if data.get("message_id"):
            reference = discord.MessageReference(
                message_id=int(data["message_id"]),
                channel_id=int(data["channel_id"]),
                fail_if_not_exists=False,
            )
        first_id = ""
        for index, post in enumerate(posts):

            async def send(post: Rendered = post, first: bool = index == 0) -> discord.Message:
                kwargs: dict[str, Any] = {
                    "content": f"{mention} {post.content}".strip() if first else post.content,
                    "files": post.files(),
                    "allowed_mentions": discord.AllowedMentions(
                        users=True, everyone=False, roles=False
                    ),
                }
                if post.embed is not None:
                    kwargs["embed"] = post.embed
                view = post.view()
                if view is not None:
                    kwargs["view"] = view
                if first and reference is not None:
                    kwargs["reference"] = reference
                return await channel.send(**kwargs)

            message = await self.call(send, "channel message")
            first_id = first_id or str(message.id)
        return first_id

    async def _posted_before(
        self, channel: discord.PartialMessageable, generation_id: str
    ) -> str | None:
        """The bot's earlier post of this generation in the channel, if a crash hid it from us."""
        me = self._client.user
        if not generation_id or me is None:
            return None
        marker = MARKER + generation_id

        async def look() -> str | None:
            async for message in channel.history(limit=HISTORY_LOOKBACK):
                if message.author.id != me.id:
                    continue
                if any((e.footer.text or "") == marker for e in message.embeds):
                    return str(message.id)
            return None

        try:
            return await self.call(look, "history lookup")
        except discord.HTTPException as exc:
            # Without read access we cannot check; posting is still better than not answering.
            log.info("discord: cannot read channel history (%s); posting anyway", exc.status)
            return None
