"""A small stateful fake of a Lemmy 0.19 instance (API v3 plus pict-rs), on 127.0.0.1 port 0.

Shapes follow ``lemmy-js-client@0.19.9``. It keeps persons, communities, posts, comments (with
``path``), mentions (made from ``@name`` in a comment), replies (made when someone answers a
comment or post of another user), votes and uploaded images, which it serves back. Tests add
state with Python methods (``add_person``, ``add_community``, ``add_post``, ``comment``, ``vote``)
and inject faults with ``fail_next(path, kind)``: the next requests on a path answer 500, 429
``rate_limit_error`` or 401 ``not_logged_in``; ``expire_tokens`` makes every issued token stale,
which 0.19 answers with 400 ``not_logged_in``. Every request is recorded in ``seen``.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.loopback import LoopbackPeer

VERSION = "0.19.13"
PUBLISHED = "2025-01-01T00:00:00.000000Z"
_MENTION = re.compile(r"(?<![\w/\[])@([A-Za-z0-9_]+)(?:@([\w.-]+))?")
_FAULTS = {
    "500": (500, {"error": "unknown", "message": "internal error"}),
    "429": (429, {"error": "rate_limit_error"}),
    "401": (401, {"error": "not_logged_in"}),
}


@dataclass
class FakePerson:
    id: int
    name: str
    password: str


@dataclass
class FakeCommunity:
    id: int
    name: str
    nsfw: bool = False


@dataclass
class FakePost:
    id: int
    name: str
    creator_id: int
    community_id: int
    body: str | None = None
    url: str | None = None
    nsfw: bool = False


@dataclass
class FakeComment:
    id: int
    creator_id: int
    post_id: int
    content: str
    path: str

    @property
    def parent_id(self) -> int | None:
        parts = self.path.split(".")
        return int(parts[-2]) if len(parts) > 2 else None


@dataclass
class FakeNotice:
    """A mention or a reply row: ``id``, who it is for, which comment, read or not."""

    id: int
    recipient_id: int
    comment_id: int
    read: bool = False


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    method: str
    path: str
    authorization: str | None
    cookie_jwt: str | None


@dataclass
class _State:
    persons: dict[int, FakePerson] = field(default_factory=dict)
    communities: dict[int, FakeCommunity] = field(default_factory=dict)
    posts: dict[int, FakePost] = field(default_factory=dict)
    comments: dict[int, FakeComment] = field(default_factory=dict)
    mentions: dict[int, FakeNotice] = field(default_factory=dict)
    replies: dict[int, FakeNotice] = field(default_factory=dict)
    votes: dict[tuple[int, int], int] = field(default_factory=dict)
    images: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)


class FakeLemmy(LoopbackPeer):
    """The fake server and its state; ``start()``/``stop()`` or use as a context manager."""

    label = "fake Lemmy"

    def __init__(self, host_name: str = "lemmy.test") -> None:
        super().__init__()
        self.host_name = host_name
        self.version = VERSION
        self.seen: list[Seen] = []
        self._state = _State()
        self._faults: dict[str, list[str]] = {}
        self._next_id = 1
        self._lock = threading.RLock()

    # ---- state, for tests --------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_person(self, name: str, password: str) -> FakePerson:
        """A local account."""
        with self._lock:
            person = FakePerson(self._new_id(), name, password)
            self._state.persons[person.id] = person
            return person

    def add_community(self, name: str, *, nsfw: bool = False) -> FakeCommunity:
        """A local community."""
        with self._lock:
            community = FakeCommunity(self._new_id(), name, nsfw)
            self._state.communities[community.id] = community
            return community

    def add_post(self, author: str, community: str, name: str = "a post") -> FakePost:
        """A text post by ``author`` in ``community``."""
        with self._lock:
            return self._create_post(
                self._person(author).id, self._community(community).id, name, None, None, False
            )

    def comment(self, author: str, post_id: int, content: str, parent_id: int | None = None) -> int:
        """A comment by ``author``, with the mentions and replies Lemmy would make; its id."""
        with self._lock:
            return self._create_comment(self._person(author).id, post_id, content, parent_id).id

    def vote(self, voter: str, comment_id: int, score: int = 1) -> None:
        """``voter`` likes (1) or dislikes (-1) a comment."""
        with self._lock:
            self._state.votes[(comment_id, self._person(voter).id)] = score

    def fail_next(self, path: str, kind: str, count: int = 1) -> None:
        """The next ``count`` requests on ``path`` answer ``kind``: "500", "429" or "401"."""
        if kind not in _FAULTS:
            raise ValueError(kind)
        with self._lock:
            self._faults.setdefault(path, []).extend([kind] * count)

    def expire_tokens(self) -> None:
        """Every token issued so far stops working, as after a password change or expiry."""
        with self._lock:
            self._state.tokens.clear()

    def comments_by(self, author: str, *, parent_id: int | None = None) -> list[FakeComment]:
        """The comments ``author`` wrote (under ``parent_id`` when given), oldest first."""
        with self._lock:
            person = self._person(author)
            found = [c for c in self._state.comments.values() if c.creator_id == person.id]
        if parent_id is not None:
            found = [c for c in found if c.parent_id == parent_id]
        return sorted(found, key=lambda c: c.id)

    def posts_in(self, community: str) -> list[FakePost]:
        """The posts of a community, oldest first."""
        with self._lock:
            wanted = self._community(community).id
            return [p for p in self._state.posts.values() if p.community_id == wanted]

    def unread_mentions(self, name: str) -> int:
        """How many mentions of ``name`` are unread."""
        with self._lock:
            person = self._person(name)
            return sum(
                1
                for m in self._state.mentions.values()
                if m.recipient_id == person.id and not m.read
            )

    def unread_replies(self, name: str) -> int:
        """How many replies to ``name`` are unread."""
        with self._lock:
            person = self._person(name)
            return sum(
                1
                for r in self._state.replies.values()
                if r.recipient_id == person.id and not r.read
            )

    def image(self, url: str) -> bytes:
        """The bytes of an uploaded image, by its URL."""
        with self._lock:
            return self._state.images[url.rsplit("/", 1)[-1]][0]

    def count(self, method: str, path: str) -> int:
        """How many requests of ``method`` on ``path`` arrived."""
        with self._lock:
            return sum(1 for s in self.seen if s.method == method and s.path == path)

    # ---- state, internal ----------------------------------------------------------------------

    def _person(self, name: str) -> FakePerson:
        for person in self._state.persons.values():
            if person.name.casefold() == name.casefold():
                return person
        raise KeyError(name)

    def _community(self, name: str) -> FakeCommunity:
        local = name.lstrip("!").split("@", 1)[0]
        for community in self._state.communities.values():
            if community.name.casefold() == local.casefold():
                return community
        raise KeyError(name)

    def _create_post(
        self,
        creator_id: int,
        community_id: int,
        name: str,
        body: str | None,
        url: str | None,
        nsfw: bool,
    ) -> FakePost:
        post = FakePost(self._new_id(), name, creator_id, community_id, body, url, nsfw)
        self._state.posts[post.id] = post
        return post

    def _create_comment(
        self, creator_id: int, post_id: int, content: str, parent_id: int | None
    ) -> FakeComment:
        post = self._state.posts[post_id]
        comment_id = self._new_id()
        if parent_id is None:
            path = f"0.{comment_id}"
        else:
            path = f"{self._state.comments[parent_id].path}.{comment_id}"
        comment = FakeComment(comment_id, creator_id, post_id, content, path)
        self._state.comments[comment_id] = comment
        notified: set[int] = {creator_id}
        for match in _MENTION.finditer(content):
            host = match[2]
            if host is not None and host != self.host_name:
                continue
            try:
                person = self._person(match[1])
            except KeyError:
                continue
            if person.id in notified:
                continue
            notified.add(person.id)
            notice = FakeNotice(self._new_id(), person.id, comment_id)
            self._state.mentions[notice.id] = notice
        # Lemmy notifies the parent comment's author, or the post's author for a top-level one,
        # unless a mention already did.
        answered = self._state.comments[parent_id].creator_id if parent_id else post.creator_id
        if answered not in notified:
            notice = FakeNotice(self._new_id(), answered, comment_id)
            self._state.replies[notice.id] = notice
        return comment

    # ---- JSON in lemmy-js-client shapes ---------------------------------------------------------

    def _person_json(self, person: FakePerson) -> dict[str, Any]:
        return {
            "id": person.id,
            "name": person.name,
            "banned": False,
            "published": PUBLISHED,
            "actor_id": f"https://{self.host_name}/u/{person.name}",
            "local": True,
            "deleted": False,
            "bot_account": False,
            "instance_id": 1,
        }

    def _community_json(self, community: FakeCommunity) -> dict[str, Any]:
        return {
            "id": community.id,
            "name": community.name,
            "title": community.name.title(),
            "removed": False,
            "published": PUBLISHED,
            "deleted": False,
            "nsfw": community.nsfw,
            "actor_id": f"https://{self.host_name}/c/{community.name}",
            "local": True,
            "hidden": False,
            "posting_restricted_to_mods": False,
            "instance_id": 1,
            "visibility": "Public",
        }

    def _post_json(self, post: FakePost) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": post.id,
            "name": post.name,
            "creator_id": post.creator_id,
            "community_id": post.community_id,
            "removed": False,
            "locked": False,
            "published": PUBLISHED,
            "deleted": False,
            "nsfw": post.nsfw,
            "ap_id": f"https://{self.host_name}/post/{post.id}",
            "local": True,
            "language_id": 0,
            "featured_community": False,
            "featured_local": False,
        }
        if post.body is not None:
            data["body"] = post.body
        if post.url is not None:
            data["url"] = post.url
        return data

    def _comment_view(self, comment: FakeComment) -> dict[str, Any]:
        post = self._state.posts[comment.post_id]
        score = sum(s for (cid, _), s in self._state.votes.items() if cid == comment.id)
        return {
            "comment": {
                "id": comment.id,
                "creator_id": comment.creator_id,
                "post_id": comment.post_id,
                "content": comment.content,
                "removed": False,
                "published": PUBLISHED,
                "deleted": False,
                "ap_id": f"https://{self.host_name}/comment/{comment.id}",
                "local": True,
                "path": comment.path,
                "distinguished": False,
                "language_id": 0,
            },
            "creator": self._person_json(self._state.persons[comment.creator_id]),
            "post": self._post_json(post),
            "community": self._community_json(self._state.communities[post.community_id]),
            "counts": {"comment_id": comment.id, "score": score, "child_count": 0},
            "creator_banned_from_community": False,
            "banned_from_community": False,
            "creator_is_moderator": False,
            "creator_is_admin": False,
            "subscribed": "NotSubscribed",
            "saved": False,
            "creator_blocked": False,
        }

    def _post_view(self, post: FakePost) -> dict[str, Any]:
        return {
            "post": self._post_json(post),
            "creator": self._person_json(self._state.persons[post.creator_id]),
            "community": self._community_json(self._state.communities[post.community_id]),
            "creator_banned_from_community": False,
            "banned_from_community": False,
            "creator_is_moderator": False,
            "creator_is_admin": False,
            "counts": {"post_id": post.id, "score": 0, "comments": 0},
            "subscribed": "NotSubscribed",
            "saved": False,
            "read": False,
            "hidden": False,
            "creator_blocked": False,
            "unread_comments": 0,
        }

    def _notice_view(self, notice: FakeNotice, key: str) -> dict[str, Any]:
        view = self._comment_view(self._state.comments[notice.comment_id])
        view[key] = {
            "id": notice.id,
            "recipient_id": notice.recipient_id,
            "comment_id": notice.comment_id,
            "read": notice.read,
            "published": PUBLISHED,
        }
        view["recipient"] = self._person_json(self._state.persons[notice.recipient_id])
        return view

    # ---- HTTP --------------------------------------------------------------------------------

    def _gate(self, request: Request, *, auth: bool = True) -> tuple[Response | None, int | None]:
        """Record the request, answer an injected fault, check the token; the caller's id."""
        header = request.headers.get("authorization")
        cookie = request.cookies.get("jwt")
        with self._lock:
            self.seen.append(Seen(request.method, request.url.path, header, cookie))
            queued = self._faults.get(request.url.path)
            if queued:
                status, body = _FAULTS[queued.pop(0)]
                return JSONResponse(body, status_code=status), None
            if not auth:
                return None, None
            token = header.removeprefix("Bearer ").strip() if header else cookie
            person_id = self._state.tokens.get(token or "")
        if person_id is None:
            return JSONResponse({"error": "not_logged_in"}, status_code=400), None
        return None, person_id

    async def _nodeinfo(self, request: Request) -> Response:
        fault, _ = self._gate(request, auth=False)
        return fault or JSONResponse(
            {
                "version": "2.0",
                "software": {"name": "lemmy", "version": self.version},
                "protocols": ["activitypub"],
                "openRegistrations": True,
            }
        )

    async def _login(self, request: Request) -> Response:
        fault, _ = self._gate(request, auth=False)
        if fault:
            return fault
        form = await request.json()
        with self._lock:
            try:
                person = self._person(str(form.get("username_or_email", "")))
            except KeyError:
                person = None
            if person is None or person.password != form.get("password"):
                return JSONResponse({"error": "incorrect_login"}, status_code=401)
            token = secrets.token_urlsafe(16)
            self._state.tokens[token] = person.id
        body = {"jwt": token, "registration_created": False, "verify_email_sent": False}
        return JSONResponse(body)

    async def _notices(self, request: Request) -> Response:
        fault, me = self._gate(request)
        if fault:
            return fault
        mentions = request.url.path.endswith("/mention")
        unread_only = request.query_params.get("unread_only") == "true"
        limit = int(request.query_params.get("limit", "20"))
        with self._lock:
            table = self._state.mentions if mentions else self._state.replies
            rows = sorted(
                (
                    n
                    for n in table.values()
                    if n.recipient_id == me and not (unread_only and n.read)
                ),
                key=lambda n: n.id,
                reverse=request.query_params.get("sort", "New") != "Old",
            )[:limit]
            key = "person_mention" if mentions else "comment_reply"
            views = [self._notice_view(n, key) for n in rows]
        return JSONResponse({"mentions": views} if mentions else {"replies": views})

    async def _mark_read(self, request: Request) -> Response:
        fault, me = self._gate(request)
        if fault:
            return fault
        form = await request.json()
        mentions = "person_mention_id" in form
        with self._lock:
            table = self._state.mentions if mentions else self._state.replies
            notice = table.get(int(form.get("person_mention_id", form.get("comment_reply_id", 0))))
            if notice is None or notice.recipient_id != me:
                return JSONResponse({"error": "couldnt_update_comment"}, status_code=400)
            notice.read = bool(form.get("read", True))
            key = "person_mention" if mentions else "comment_reply"
            view = self._notice_view(notice, key)
        return JSONResponse({f"{key}_view": view})

    async def _create_comment_route(self, request: Request) -> Response:
        fault, me = self._gate(request)
        if fault or me is None:
            return fault or Response(status_code=500)
        form = await request.json()
        with self._lock:
            if int(form["post_id"]) not in self._state.posts:
                return JSONResponse({"error": "couldnt_find_post"}, status_code=404)
            comment = self._create_comment(
                me, int(form["post_id"]), str(form["content"]), form.get("parent_id")
            )
            view = self._comment_view(comment)
        return JSONResponse({"comment_view": view, "recipient_ids": []})

    async def _list_comments(self, request: Request) -> Response:
        fault, _ = self._gate(request)
        if fault:
            return fault
        query = request.query_params
        with self._lock:
            found = list(self._state.comments.values())
            if "post_id" in query:
                found = [c for c in found if c.post_id == int(query["post_id"])]
            if "parent_id" in query:
                parent = self._state.comments[int(query["parent_id"])]
                found = [c for c in found if c.path.startswith(parent.path + ".")]
            found.sort(key=lambda c: c.id, reverse=True)
            views = [self._comment_view(c) for c in found[: int(query.get("limit", "10"))]]
        return JSONResponse({"comments": views})

    async def _comment_likes(self, request: Request) -> Response:
        fault, _ = self._gate(request)
        if fault:
            return fault
        query = request.query_params
        comment_id, page, limit = (
            int(query["comment_id"]),
            int(query.get("page", "1")),
            int(query.get("limit", "10")),
        )
        with self._lock:
            rows = [
                {
                    "creator": self._person_json(self._state.persons[person_id]),
                    "creator_banned_from_community": False,
                    "score": score,
                }
                for (cid, person_id), score in sorted(self._state.votes.items())
                if cid == comment_id
            ]
        return JSONResponse({"comment_likes": rows[(page - 1) * limit : page * limit]})

    async def _create_post_route(self, request: Request) -> Response:
        fault, me = self._gate(request)
        if fault or me is None:
            return fault or Response(status_code=500)
        form = await request.json()
        with self._lock:
            if int(form["community_id"]) not in self._state.communities:
                return JSONResponse({"error": "couldnt_find_community"}, status_code=404)
            post = self._create_post(
                me,
                int(form["community_id"]),
                str(form["name"]),
                form.get("body"),
                form.get("url"),
                bool(form.get("nsfw", False)),
            )
            view = self._post_view(post)
        return JSONResponse({"post_view": view})

    async def _list_posts(self, request: Request) -> Response:
        fault, _ = self._gate(request)
        if fault:
            return fault
        query = request.query_params
        with self._lock:
            found = list(self._state.posts.values())
            if "community_id" in query:
                found = [p for p in found if p.community_id == int(query["community_id"])]
            found.sort(key=lambda p: p.id, reverse=True)
            views = [self._post_view(p) for p in found[: int(query.get("limit", "10"))]]
        return JSONResponse({"posts": views})

    async def _get_community(self, request: Request) -> Response:
        fault, _ = self._gate(request)
        if fault:
            return fault
        with self._lock:
            try:
                community = self._community(request.query_params.get("name", ""))
            except KeyError:
                return JSONResponse({"error": "couldnt_find_community"}, status_code=404)
            view = {
                "community": self._community_json(community),
                "subscribed": "NotSubscribed",
                "blocked": False,
                "counts": {"community_id": community.id},
                "banned_from_community": False,
            }
        return JSONResponse({"community_view": view, "moderators": [], "discussion_languages": []})

    async def _upload(self, request: Request) -> Response:
        fault, _ = self._gate(request)
        if fault:
            return fault
        form = await request.form()
        files = []
        for item in form.getlist("images[]"):
            if not isinstance(item, UploadFile):
                continue
            data = await item.read()
            name = f"{secrets.token_hex(8)}.{(item.filename or 'x.bin').rsplit('.', 1)[-1]}"
            with self._lock:
                self._state.images[name] = (data, item.content_type or "application/octet-stream")
            files.append({"file": name, "delete_token": secrets.token_hex(8)})
        await form.close()
        if not files:
            return JSONResponse({"msg": "no_images"}, status_code=400)
        return JSONResponse({"msg": "ok", "files": files})

    async def _serve_image(self, request: Request) -> Response:
        with self._lock:
            found = self._state.images.get(request.path_params["name"])
        if found is None:
            return Response(status_code=404)
        return Response(found[0], media_type=found[1])

    def app(self) -> Starlette:
        """The ASGI app."""
        api = "/api/v3"
        return Starlette(
            routes=[
                Route("/nodeinfo/2.0.json", self._nodeinfo),
                Route(f"{api}/user/login", self._login, methods=["POST"]),
                Route(f"{api}/user/mention", self._notices),
                Route(f"{api}/user/replies", self._notices),
                Route(f"{api}/user/mention/mark_as_read", self._mark_read, methods=["POST"]),
                Route(f"{api}/comment/mark_as_read", self._mark_read, methods=["POST"]),
                Route(f"{api}/comment", self._create_comment_route, methods=["POST"]),
                Route(f"{api}/comment/list", self._list_comments),
                Route(f"{api}/comment/like/list", self._comment_likes),
                Route(f"{api}/post", self._create_post_route, methods=["POST"]),
                Route(f"{api}/post/list", self._list_posts),
                Route(f"{api}/community", self._get_community),
                Route("/pictrs/image", self._upload, methods=["POST"]),
                Route("/pictrs/image/{name}", self._serve_image),
            ]
        )


def serve() -> Iterator[FakeLemmy]:
    """Generator body for a pytest fixture: a started fake, stopped afterwards."""
    with FakeLemmy() as fake:
        yield fake
