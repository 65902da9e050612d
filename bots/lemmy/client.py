"""A small typed async client for the Lemmy HTTP API v3 (Lemmy 0.19) and its pict-rs uploads.

Our own rather than pythorhead: that one is synchronous, raises bare ``Exception`` and uploads with
a cookie only. Every call re-logs in once when the server says the token is no longer good, and
429 (``rate_limit_error``), 5xx and dropped connections are retried with ``core.retrying``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from bots.lemmy import wire
from core.retrying import Backoff, Verdict, call_with_retries, http_verdict

log = logging.getLogger(__name__)

API = "/api/v3"
MIN_VERSION = (0, 19)
# Lemmy 1.0 speaks API v4; its v3 endpoints are a compatibility layer we have not tried.
UNTRIED_VERSION = (1, 0)
_AUTH_ERRORS = frozenset({"not_logged_in"})
M = TypeVar("M", bound=BaseModel)


class LemmyError(Exception):
    """The server refused a call: HTTP status and Lemmy's error code (``rate_limit_error`` …)."""

    def __init__(self, status: int, error: str, *, path: str, retry_after: str | None = None):
        super().__init__(f"{path}: HTTP {status} {error}".strip())
        self.status = status
        self.error = error
        self.path = path
        self.retry_after = retry_after


class UnsupportedLemmy(Exception):
    """The instance runs a Lemmy this client does not speak (older than 0.19)."""


def classify(exc: BaseException) -> Verdict:
    """Retry rate limits, server errors and lost connections; nothing else."""
    if isinstance(exc, LemmyError):
        if exc.error == "rate_limit_error":
            return Verdict(True, http_verdict(429, exc.retry_after).wait_s)
        return http_verdict(exc.status, exc.retry_after)
    if isinstance(exc, httpx.TransportError):
        return Verdict(True)
    return Verdict(False)


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.19.13-beta.1"`` → ``(0, 19, 13)``."""
    numbers = re.findall(r"\d+", text.split("-", 1)[0])
    return tuple(int(n) for n in numbers[:3])


class LemmyClient:
    """One bot account on one instance."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout_s: float = 30.0,
        backoff: Backoff | None = None,
        attempts: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._backoff = backoff or Backoff(first_s=1.0, max_s=30.0)
        self._attempts = attempts
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            headers={"User-Agent": "hordebot (+https://github.com/Haidra-Org)"},
        )
        self._jwt: str | None = None
        self._login_lock = asyncio.Lock()
        self.version = ""

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ---- session ---------------------------------------------------------------------------

    async def check_version(self) -> str:
        """The server's Lemmy version from nodeinfo; ``UnsupportedLemmy`` below 0.19."""
        data = await self._retrying(lambda: self._once("GET", "/nodeinfo/2.0.json", auth=False))
        info = wire.NodeInfo.model_validate(data)
        found = parse_version(info.software.version)
        if info.software.name.casefold() != "lemmy" or found[:2] < MIN_VERSION:
            raise UnsupportedLemmy(
                f"{self.base_url} runs {info.software.name} {info.software.version}; "
                "the Lemmy adapter needs Lemmy 0.19 or newer (API v3)"
            )
        if found[:2] >= UNTRIED_VERSION:
            log.warning("Lemmy %s: API v3 on Lemmy 1.x is untried", info.software.version)
        self.version = info.software.version
        return self.version

    async def login(self) -> None:
        """Log in and keep the token; ``LemmyError`` (``incorrect_login`` …) when refused."""
        async with self._login_lock:
            await self._login_locked()

    async def _login_locked(self) -> None:
        body = {"username_or_email": self.username, "password": self._password}
        data = await self._retrying(
            lambda: self._once("POST", f"{API}/user/login", json=body, auth=False)
        )
        answer = wire.LoginResponse.model_validate(data)
        if not answer.jwt:
            raise LemmyError(200, "no token: registration or e-mail check pending", path="login")
        self._jwt = answer.jwt
        log.info("logged in to %s as %s", self.base_url, self.username)

    async def _relogin(self, stale: str | None) -> None:
        async with self._login_lock:
            # Another call may have logged in again while this one waited.
            if self._jwt == stale or self._jwt is None:
                await self._login_locked()

    # ---- inbox -----------------------------------------------------------------------------

    async def mentions(
        self, *, unread_only: bool = True, limit: int = 50
    ) -> list[wire.PersonMentionView]:
        """Comments that mention the bot, oldest first."""
        params = {"unread_only": _flag(unread_only), "sort": "Old", "limit": limit, "page": 1}
        answer = await self._get(f"{API}/user/mention", wire.GetPersonMentionsResponse, params)
        return answer.mentions

    async def replies(
        self, *, unread_only: bool = True, limit: int = 50
    ) -> list[wire.CommentReplyView]:
        """Comments that answer the bot's comments or posts, oldest first."""
        params = {"unread_only": _flag(unread_only), "sort": "Old", "limit": limit, "page": 1}
        answer = await self._get(f"{API}/user/replies", wire.GetRepliesResponse, params)
        return answer.replies

    async def mark_mention_read(self, person_mention_id: int) -> None:
        """Mark one mention read."""
        body = {"person_mention_id": person_mention_id, "read": True}
        await self._call("POST", f"{API}/user/mention/mark_as_read", json=body)

    async def mark_reply_read(self, comment_reply_id: int) -> None:
        """Mark one reply read."""
        body = {"comment_reply_id": comment_reply_id, "read": True}
        await self._call("POST", f"{API}/comment/mark_as_read", json=body)

    # ---- comments and posts ----------------------------------------------------------------

    async def create_comment(
        self, post_id: int, content: str, *, parent_id: int | None = None, retry: bool = True
    ) -> wire.CommentView:
        """Post a comment. ``retry=False`` leaves retrying to a caller that checks first whether
        an earlier try got through, so a lost answer cannot make a second comment."""
        body: dict[str, Any] = {"post_id": post_id, "content": content}
        if parent_id is not None:
            body["parent_id"] = parent_id
        data = await self._call("POST", f"{API}/comment", json=body, retry=retry)
        return wire.CommentResponse.model_validate(data).comment_view

    async def comments(
        self, *, post_id: int, parent_id: int | None = None, limit: int = 50
    ) -> list[wire.CommentView]:
        """Comments of a post, or of the thread under ``parent_id``, newest first."""
        params: dict[str, Any] = {"post_id": post_id, "sort": "New", "limit": limit, "type_": "All"}
        if parent_id is not None:
            params["parent_id"] = parent_id
            params["max_depth"] = 8
        answer = await self._get(f"{API}/comment/list", wire.GetCommentsResponse, params)
        return answer.comments

    async def create_post(
        self,
        community_id: int,
        name: str,
        *,
        body: str | None = None,
        url: str | None = None,
        nsfw: bool = False,
        alt_text: str | None = None,
        retry: bool = True,
    ) -> wire.PostView:
        """Create a post in a community."""
        form: dict[str, Any] = {"community_id": community_id, "name": name, "nsfw": nsfw}
        for key, value in (("body", body), ("url", url), ("alt_text", alt_text)):
            if value:
                form[key] = value
        data = await self._call("POST", f"{API}/post", json=form, retry=retry)
        return wire.PostResponse.model_validate(data).post_view

    async def posts(self, community_id: int, *, limit: int = 50) -> list[wire.PostView]:
        """The newest posts of a community."""
        params = {"community_id": community_id, "sort": "New", "limit": limit, "type_": "All"}
        answer = await self._get(f"{API}/post/list", wire.GetPostsResponse, params)
        return answer.posts

    async def community(self, name: str) -> wire.Community:
        """A community by name (``name`` or ``name@instance``)."""
        answer = await self._get(
            f"{API}/community", wire.GetCommunityResponse, {"name": name.lstrip("!")}
        )
        return answer.community_view.community

    async def comment_likes(self, comment_id: int, *, limit: int = 50) -> list[wire.VoteView]:
        """Who voted on a comment (Lemmy allows this to the community's moderators and admins)."""
        votes: list[wire.VoteView] = []
        page = 1
        while True:
            params = {"comment_id": comment_id, "page": page, "limit": limit}
            answer = await self._get(
                f"{API}/comment/like/list", wire.ListCommentLikesResponse, params
            )
            votes.extend(answer.comment_likes)
            if len(answer.comment_likes) < limit:
                return votes
            page += 1

    async def upload_image(self, data: bytes, mime_type: str, filename: str) -> str:
        """Upload to the instance's pict-rs; return the image URL."""
        files = {"images[]": (filename, data, mime_type)}
        answer = wire.UploadImageResponse.model_validate(
            await self._call("POST", "/pictrs/image", files=files)
        )
        if answer.msg != "ok" or not answer.files:
            raise LemmyError(200, answer.msg or "upload refused", path="/pictrs/image")
        return f"{self.base_url}/pictrs/image/{answer.files[0].file}"

    # ---- plumbing ---------------------------------------------------------------------------

    async def _get(self, path: str, model: type[M], params: Mapping[str, Any]) -> M:
        return model.model_validate(await self._call("GET", path, params=params))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        retry: bool = True,
    ) -> Any:
        async def once() -> Any:
            return await self._once(method, path, params=params, json=json, files=files)

        if not retry:
            return await once()
        return await self._retrying(once)

    async def _retrying(self, call: Any) -> Any:
        return await call_with_retries(
            call, classify, attempts=self._attempts, backoff=self._backoff, what="lemmy call"
        )

    async def _once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        auth: bool = True,
    ) -> Any:
        if auth and self._jwt is None:
            await self._relogin(None)
        used = self._jwt
        response = await self._send(method, path, params, json, files, used if auth else None)
        if auth and _is_auth_failure(response):
            log.info("lemmy token refused on %s; logging in again", path)
            await self._relogin(used)
            response = await self._send(method, path, params, json, files, self._jwt)
        if response.status_code >= 400:
            raise LemmyError(
                response.status_code,
                _error_code(response),
                path=path,
                retry_after=response.headers.get("retry-after"),
            )
        return response.json()

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Mapping[str, Any] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        jwt: str | None,
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        cookies: dict[str, str] = {}
        if jwt is not None:
            headers["Authorization"] = f"Bearer {jwt}"
            # pict-rs behind Lemmy 0.19 has read the token from the cookie; send both.
            cookies["jwt"] = jwt
        request = self._http.build_request(
            method, path, params=params, json=json, files=files, headers=headers, cookies=cookies
        )
        return await self._http.send(request)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _error_code(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return response.reason_phrase


def _is_auth_failure(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    return response.status_code == 400 and _error_code(response) in _AUTH_ERRORS
