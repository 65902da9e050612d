"""The blocking half: every praw call the adapter makes, on plain values, run in one thread.

praw is synchronous and not safe to share between threads, so the adapter runs these methods one
at a time in a dedicated executor. Nothing here retries (``classify`` tells the adapter's retry
loop which failures are worth another try) and nothing here knows the core.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

import praw
import praw.const
import prawcore
from PIL import Image
from praw.exceptions import RedditAPIException
from praw.models import PostMedia

from bots.reddit.config import RedditConfig, Secrets
from bots.reddit.inbound import Item, Source
from bots.reddit.render import PostedImages
from core.retrying import Verdict, http_verdict

_PATHS: dict[str, str] = praw.const.API_PATH  # type: ignore[attr-defined]
# How far back the bot looks among its own comments and posts for a marker.
OWN_LOOKBACK = 100
# Reddit refuses a comment on a removed or locked thing; trying again cannot help.
FINAL_ERRORS = frozenset({"DELETED_COMMENT", "THREAD_LOCKED", "TOO_OLD", "USER_BLOCKED"})


class Refused(Exception):
    """Reddit will not take this call, whatever we do (a deleted parent, a locked thread)."""


class NotListed(Exception):
    """An image post was made but Reddit does not list it yet; looking again later may find it."""


def classify(exc: BaseException) -> Verdict:
    """praw's failures: 429 (with its wait), 5xx and network trouble are worth a retry."""
    if isinstance(exc, prawcore.TooManyRequests):
        headers = exc.response.headers
        wait = exc.retry_after or headers.get("x-ratelimit-reset")
        return http_verdict(429, wait)
    if isinstance(exc, prawcore.ResponseException):
        return http_verdict(exc.response.status_code, exc.response.headers.get("retry-after"))
    if isinstance(exc, prawcore.RequestException | NotListed):
        return Verdict(True)
    if isinstance(exc, RedditAPIException):
        # Reddit's own throttle for new accounts: "you are doing that too much".
        if any(item.error_type == "RATELIMIT" for item in exc.items):
            return Verdict(True, 60.0)
        return Verdict(False)
    return Verdict(False)


class RedditApi:
    """One logged-in praw client and the few calls the adapter needs."""

    def __init__(self, config: RedditConfig, secrets: Secrets) -> None:
        self._config = config
        self._reddit = praw.Reddit(
            client_id=secrets.client_id,
            client_secret=secrets.client_secret,
            username=config.username,
            password=secrets.password,
            user_agent=config.user_agent,
            oauth_url=config.oauth_url,
            reddit_url=config.reddit_url,
            check_for_updates=False,
        )
        self.username = config.username

    def connect(self) -> str:
        """Log in and return the account's name as Reddit spells it."""
        me = self._reddit.user.me()
        if me is None:
            raise Refused("Reddit did not say who the bot is (read-only login?)")
        self.username = str(me.name)
        return self.username

    # ---- reading ---------------------------------------------------------------------------

    def new_comments(self, subreddits: Sequence[str], before: str | None) -> list[Item]:
        """Comments newer than ``before`` (all recent ones without it), oldest first."""
        params: dict[str, str | int] = {"limit": 100}
        if before:
            params["before"] = before
        listing = self._reddit.get(f"r/{'+'.join(subreddits)}/comments/", params=params)
        items = [_item(thing, Source.STREAM) for thing in listing]
        return list(reversed([i for i in items if i is not None]))

    def newest_comment(self, subreddits: Sequence[str]) -> str | None:
        """The fullname of the newest comment, the starting point of a fresh bot."""
        listing = self._reddit.get(f"r/{'+'.join(subreddits)}/comments/", params={"limit": 1})
        for thing in listing:
            return str(thing.fullname)
        return None

    def unread(self) -> list[Item]:
        """Unread mentions, replies and private messages, oldest first."""
        items = []
        for thing in self._reddit.inbox.unread(limit=100):
            kind = getattr(thing, "type", "")
            if getattr(thing, "was_comment", False):
                source = Source.MENTION if kind == "username_mention" else Source.REPLY
            else:
                source = Source.MESSAGE
            item = _item(thing, source)
            if item is not None:
                items.append(item)
        return list(reversed(items))

    def mark_read(self, fullnames: Sequence[str]) -> None:
        """Mark inbox items read, so the next poll does not fetch them again."""
        if fullnames:
            self._reddit.post(_PATHS["read_message"], data={"id": ",".join(fullnames)})

    def score(self, fullname: str) -> int:
        """The net score of a comment or post."""
        for thing in self._reddit.info(fullnames=[fullname]):
            return int(thing.score)
        raise Refused(f"{fullname} is gone")

    # ---- the bot's own things --------------------------------------------------------------

    def own_reply_with(self, parent: str, mark: str) -> str | None:
        """The fullname of the bot's comment under ``parent`` carrying ``mark``, if any."""
        if not parent.startswith("t1_") and not parent.startswith("t3_"):
            return None  # message replies are not listed among the bot's comments
        for comment in self._reddit.redditor(self.username).comments.new(limit=OWN_LOOKBACK):
            if comment.parent_id == parent and mark in comment.body:
                return str(comment.fullname)
        return None

    def reply_once(self, parent: str, text: str, mark: str) -> str:
        """Post ``text`` under ``parent`` unless the bot already did; return its fullname.

        Looking first makes a retry after a lost answer (a 5xx after Reddit took the comment)
        harmless.
        """
        existing = self.own_reply_with(parent, mark)
        if existing is not None:
            return existing
        try:
            answer = self._reddit.post(_PATHS["comment"], data={"thing_id": parent, "text": text})
        except RedditAPIException as exc:
            if any(item.error_type in FINAL_ERRORS for item in exc.items):
                raise Refused(str(exc)) from exc
            raise
        things = answer if isinstance(answer, list) else [answer]
        return str(things[0].fullname)

    def own_post_with(self, mark: str) -> PostedImages | None:
        """The bot's image post whose text carries ``mark``, if it made one."""
        for post in self._reddit.redditor(self.username).submissions.new(limit=OWN_LOOKBACK):
            if mark in (post.selftext or ""):
                return self._posted(post)
        return None

    def submit_images(
        self,
        subreddit: str,
        title: str,
        body: str,
        images: Sequence[tuple[bytes, str]],
        *,
        nsfw: bool,
        mark: str,
    ) -> PostedImages:
        """Upload ``images`` (data, caption) as one post: a gallery, or an image post for one.

        An image post is made without praw's websocket (not every network lets it through), so
        its fullname is then found by the marker in its text.
        """
        media = [
            PostMedia(_as_png(data), name=f"image-{n}.png") for n, (data, _) in enumerate(images)
        ]
        target = self._reddit.subreddit(subreddit)
        if len(media) == 1:
            target.submit(title, image=media[0], selftext=body, nsfw=nsfw, without_websockets=True)
            for _ in range(5):
                found = self.own_post_with(mark)
                if found is not None:
                    return found
                time.sleep(1.0)  # Reddit lists a media post once it has processed it
            raise NotListed(f"Reddit has not listed the image post {mark} yet")
        gallery: list[PostMedia | dict[str, str | PostMedia]] = [
            {"media": m, "caption": c} for m, (_, c) in zip(media, images, strict=True)
        ]
        post = target.submit(title, gallery=gallery, selftext=body, nsfw=nsfw)
        if post is None:
            raise Refused("Reddit made no gallery post")
        return self._posted(next(iter(self._reddit.info(fullnames=[post.fullname]))))

    def submit_text(self, subreddit: str, title: str, body: str) -> str:
        """A text post; returns its fullname."""
        post = self._reddit.subreddit(subreddit).submit(title, selftext=body)
        if post is None:
            raise Refused("Reddit made no post")
        return str(post.fullname)

    def _posted(self, post: Any) -> PostedImages:
        link = self._config.reddit_url.rstrip("/") + str(post.permalink)
        metadata = getattr(post, "media_metadata", None) or {}
        if metadata:
            order = [i["media_id"] for i in getattr(post, "gallery_data", {}).get("items", [])]
            urls = tuple(str(metadata[m]["s"]["u"]) for m in order or list(metadata))
        else:
            urls = (str(post.url),)
        return PostedImages(fullname=str(post.fullname), link=link, image_urls=urls)


def _item(thing: Any, source: Source) -> Item | None:
    author = getattr(thing, "author", None)
    if author is None:
        return None  # deleted
    subreddit = getattr(thing, "subreddit", None)
    return Item(
        fullname=str(thing.fullname),
        author=str(author),
        body=str(getattr(thing, "body", "") or ""),
        subreddit=str(subreddit) if subreddit else None,
        source=source,
        created_utc=float(getattr(thing, "created_utc", 0.0) or 0.0),
    )


def _as_png(data: bytes) -> bytes:
    """Reddit's media upload takes PNG and JPEG; the horde sends WebP."""
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.save(out, format="PNG")
    return out.getvalue()
