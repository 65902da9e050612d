"""The bot account's Mastodon API, async: Mastodon.py in worker threads, retried as one policy.

Mastodon.py is synchronous (requests); every call runs in ``asyncio.to_thread`` so the event loop
stays free. It is built with ``ratelimit_method="throw"``: a 429 comes back here, where
``core.retrying`` waits until the reset time the server gave (capped) instead of Mastodon.py
sleeping inside a thread for up to five minutes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
)

from bots.mastodon.config import MastodonConfig
from bots.mastodon.render import StatusPlan
from core.messages import OutImage
from core.retrying import Backoff, Verdict, call_with_retries

log = logging.getLogger(__name__)

T = TypeVar("T")
PAGE = 40
# Pages of mentions read in one catch-up at most; older ones are left (they are stale anyway).
MAX_PAGES = 10
_EXTENSIONS = {"image/webp": "webp", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}


def status_code(exc: BaseException) -> int | None:
    """The HTTP status Mastodon.py put in an ``MastodonAPIError``'s arguments, if any."""
    for arg in getattr(exc, "args", ())[1:2]:
        if isinstance(arg, int):
            return arg
    return None


class MastodonApi:
    """The few calls the adapter makes, each retried on 429, 5xx and dropped connections."""

    def __init__(self, config: MastodonConfig, token: str, *, client: Any = None) -> None:
        self._client: Any = client or Mastodon(
            access_token=token,
            api_base_url=config.api_base_url,
            ratelimit_method="throw",
            request_timeout=config.request_timeout_s,
            version_check_mode="none",
        )
        self._attempts = config.retry_attempts
        self._backoff = Backoff(first_s=1.0, max_s=config.retry_max_wait_s)

    @property
    def client(self) -> Any:
        """The Mastodon.py client (the stream runs on it)."""
        return self._client

    def classify(self, exc: BaseException) -> Verdict:
        """Worth another try: a rate limit (after its reset time), 5xx, no answer at all."""
        if isinstance(exc, MastodonRatelimitError):
            reset = getattr(self._client, "ratelimit_reset", None)
            wait = max(0.0, float(reset) - time.time()) if reset else None
            return Verdict(True, wait)
        if isinstance(exc, MastodonServerError | MastodonNetworkError):
            return Verdict(True)
        if isinstance(exc, MastodonAPIError):
            code = status_code(exc)
            return Verdict(code is not None and (code == 429 or code >= 500))
        return Verdict(False)

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def once() -> T:
            return await asyncio.to_thread(fn, *args, **kwargs)

        return await call_with_retries(
            once, self.classify, attempts=self._attempts, backoff=self._backoff, what=what
        )

    async def me(self) -> Mapping[str, Any]:
        """The bot's own account."""
        result: Mapping[str, Any] = await self._call(
            "verify credentials", self._client.account_verify_credentials
        )
        return result

    async def mentions_after(self, since_id: str | None) -> list[Mapping[str, Any]]:
        """Mention notifications newer than ``since_id`` (all pages, up to a bound), newest first.

        Without ``since_id`` only the newest page is read: a fresh bot answers what came in
        lately, not an account's whole history.
        """
        found: list[Mapping[str, Any]] = []
        max_id: str | None = None
        for _ in range(MAX_PAGES if since_id else 1):
            page = await self._call(
                "read notifications",
                self._client.notifications,
                types=["mention"],
                since_id=since_id,
                max_id=max_id,
                limit=PAGE,
            )
            items = list(page or [])
            if not items:
                break
            found.extend(items)
            max_id = str(items[-1]["id"])
            if len(items) < PAGE:
                break
        return found

    async def recent_statuses(self, account_id: str, limit: int = 20) -> list[Mapping[str, Any]]:
        """The account's newest statuses (replies included)."""
        page = await self._call(
            "read own statuses", self._client.account_statuses, account_id, limit=limit
        )
        return list(page or [])

    async def upload(self, image: OutImage, index: int) -> str:
        """Upload one image with its alt text; returns the media id once it can be attached."""
        extension = _EXTENSIONS.get(image.mime_type, "bin")
        media = await self._call(
            "upload media",
            self._client.media_post,
            io.BytesIO(image.data),
            mime_type=image.mime_type,
            description=image.alt_text or None,
            file_name=f"image-{index + 1}.{extension}",
        )
        media_id = str(media["id"])
        # The v2 endpoint may answer 202 with no URL yet: attaching it now would be refused.
        for _ in range(30):
            if media.get("url"):
                break
            await asyncio.sleep(1.0)
            media = await self._call("check media", self._client.media, media_id)
        return media_id

    async def post(
        self, plan: StatusPlan, *, in_reply_to: str | None, media_ids: list[str]
    ) -> Mapping[str, Any]:
        """Post one status; the plan's idempotency key makes a repeat return the first status."""
        status: Mapping[str, Any] = await self._call(
            "post status",
            self._client.status_post,
            plan.text,
            in_reply_to_id=in_reply_to,
            media_ids=media_ids or None,
            sensitive=plan.sensitive,
            visibility=plan.visibility,
            spoiler_text=plan.spoiler_text or None,
            idempotency_key=plan.idempotency_key,
        )
        return status

    async def favourited_by(self, status_id: str) -> list[Mapping[str, Any]]:
        """Every account that favourited a status (all pages)."""
        first = await self._call("read favourites", self._client.status_favourited_by, status_id)
        if getattr(first, "_pagination_next", None) is None:
            return list(first or [])
        everyone = await self._call("read favourites", self._client.fetch_remaining, first)
        return list(everyone or [])

    def close(self) -> None:
        """Close the HTTP session (its pooled sockets)."""
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()
