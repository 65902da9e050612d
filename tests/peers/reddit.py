"""A small stateful fake of Reddit's API for the real praw, on 127.0.0.1 port 0 in a thread.

It keeps comments, posts, private messages, the bot's inbox and uploaded media, and answers the
paths praw calls, in the shapes of praw's recorded cassettes (``Listing`` envelopes, the
``{"json": {"errors": [], "data": ...}}`` answers of ``/api/comment/`` and the submit endpoints).
Reddit's paths end in ``/``; both forms are served and nothing redirects (prawcore raises on a
redirect).

praw uploads media to the S3 URL of an upload lease and always calls it ``https:``, so the fake
also serves the same app over TLS on a second port with a throwaway CA; a test points requests at
that CA with ``REQUESTS_CA_BUNDLE`` (``ca_file``). Uploaded images are served back from there, as
``i.redd.it`` would.

Test hooks: ``add_comment`` (a mention of ``u/<bot>`` also lands in the bot's inbox, a reply to
the bot's comment too), ``add_message`` (a private message), ``fail`` (the next N requests on a
path answer 5xx or 429 with ``Retry-After``/``x-ratelimit-*``), ``set_score``, and readers of what
the bot posted (``replies_to``, ``bot_comments``, ``posts_in``, ``uploaded``).
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.loopback import loopback_server, wait_started

Endpoint = Callable[[Request], Awaitable[Response]]
BUCKET = "media-bucket"


@dataclass
class Fault:
    """One injected answer: a status and its headers."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the fake answered (or failed on purpose)."""

    method: str
    path: str
    status: int


class RedditFake:
    """Reddit's API, the part a bot uses, with state."""

    def __init__(
        self,
        *,
        bot: str = "hordebot",
        password: str = "bot-password",  # noqa: S107
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",  # noqa: S107
    ) -> None:
        self.bot = bot
        self.password = password
        self.client_id = client_id
        self.client_secret = client_secret
        self.things: dict[str, dict[str, Any]] = {}
        # Every comment in creation order; listings go newest first.
        self._comment_order: list[str] = []
        self._post_order: list[str] = []
        self.inbox: list[str] = []
        self.unread: set[str] = set()
        self.uploaded: dict[str, bytes] = {}
        self._assets: dict[str, str] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._tokens: set[str] = set()
        self._ids = itertools.count(1000)
        self._clock = time.time()
        self.seen: list[Seen] = []
        self._lock = threading.RLock()
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []
        self._tmp: Path | None = None
        self.base_url = ""
        self.media_url = ""
        self.ca_file = ""

    # ---- test hooks -------------------------------------------------------------------------

    def add_post(self, subreddit: str, author: str, title: str, selftext: str = "") -> str:
        """A text post; returns its fullname."""
        with self._lock:
            post = self._new_post(subreddit, author, title, selftext=selftext)
            return str(post["name"])

    def add_comment(
        self, subreddit: str, author: str, body: str, *, parent: str | None = None
    ) -> str:
        """A comment (under ``parent``, else under a fresh post); returns its fullname.

        A comment that names ``u/<bot>`` notifies the bot (``username_mention``), and a reply to
        the bot's comment lands in its inbox as a ``comment_reply``, as on Reddit.
        """
        with self._lock:
            if parent is None:
                parent = self._new_post(subreddit, "op", "a thread")["name"]
            comment = self._new_comment(subreddit, author, body, str(parent))
            parent_thing = self.things.get(str(parent), {})
            if author != self.bot:
                if f"u/{self.bot}".casefold() in body.casefold():
                    self._notify(comment, "username_mention", "username mention")
                elif parent_thing.get("author") == self.bot:
                    kind = "comment_reply" if str(parent).startswith("t1_") else "post_reply"
                    self._notify(comment, kind, kind.replace("_", " "))
            return str(comment["name"])

    def add_message(self, author: str, subject: str, body: str) -> str:
        """A private message to the bot; returns its fullname."""
        with self._lock:
            item_id = self._next_id()
            data: dict[str, Any] = {
                "id": item_id,
                "name": f"t4_{item_id}",
                "author": author,
                "dest": self.bot,
                "subject": subject,
                "body": body,
                "was_comment": False,
                "created_utc": self._tick(),
                "new": True,
                "parent_id": None,
                "first_message_name": None,
                "replies": "",
                "subreddit": None,
                "distinguished": None,
            }
            self.things[data["name"]] = data
            self.inbox.append(data["name"])
            self.unread.add(data["name"])
            return str(data["name"])

    def fail(self, path: str, times: int = 1, status: int = 503, **headers: str) -> None:
        """The next ``times`` requests on ``path`` (no trailing slash) answer ``status``."""
        with self._lock:
            queue = self._faults.setdefault(path.rstrip("/"), deque())
            queue.extend(Fault(status, dict(headers)) for _ in range(times))

    def set_score(self, fullname: str, score: int) -> None:
        """Votes arrived on a comment or post."""
        with self._lock:
            self.things[fullname]["score"] = score
            self.things[fullname]["ups"] = max(score, 0)

    def replies_to(self, fullname: str) -> list[dict[str, Any]]:
        """The bot's comments under ``fullname`` (a comment or a message)."""
        with self._lock:
            return [
                dict(thing)
                for thing in self.things.values()
                if thing.get("parent_id") == fullname and thing.get("author") == self.bot
            ]

    def bot_comments(self) -> list[dict[str, Any]]:
        """Every comment or message reply the bot wrote, oldest first."""
        with self._lock:
            return [
                dict(t)
                for t in sorted(self.things.values(), key=lambda t: t.get("created_utc", 0))
                if t.get("author") == self.bot and t["name"][:2] in ("t1", "t4")
            ]

    def posts_in(self, subreddit: str) -> list[dict[str, Any]]:
        """The posts of one subreddit, oldest first."""
        with self._lock:
            return [
                dict(self.things[name])
                for name in self._post_order
                if self.things[name]["subreddit"].casefold() == subreddit.casefold()
            ]

    def count(self, method: str, path: str) -> int:
        """How many requests (failed ones too) hit ``path`` (no trailing slash)."""
        return sum(1 for s in self.seen if s.method == method and s.path == path.rstrip("/"))

    # ---- building things --------------------------------------------------------------------

    def _next_id(self) -> str:
        return _base36(next(self._ids))

    def _tick(self) -> float:
        self._clock += 1.0
        return self._clock

    def _new_post(
        self,
        subreddit: str,
        author: str,
        title: str,
        *,
        selftext: str = "",
        url: str | None = None,
        nsfw: bool = False,
        gallery: list[str] | None = None,
    ) -> dict[str, Any]:
        post_id = self._next_id()
        permalink = f"/r/{subreddit}/comments/{post_id}/post/"
        data: dict[str, Any] = {
            "id": post_id,
            "name": f"t3_{post_id}",
            "subreddit": subreddit,
            "subreddit_name_prefixed": f"r/{subreddit}",
            "author": author,
            "title": title,
            "selftext": selftext,
            "is_self": url is None and gallery is None,
            "url": url or f"https://www.reddit.com{permalink}",
            "permalink": permalink,
            "over_18": nsfw,
            "score": 1,
            "ups": 1,
            "num_comments": 0,
            "created_utc": self._tick(),
        }
        if gallery is not None:
            data["is_gallery"] = True
            data["url"] = f"https://www.reddit.com/gallery/{post_id}"
            data["gallery_data"] = {
                "items": [{"media_id": a, "id": n} for n, a in enumerate(gallery, start=1)]
            }
            data["media_metadata"] = {
                asset: {
                    "status": "valid",
                    "e": "Image",
                    "m": "image/png",
                    "id": asset,
                    "s": {"u": self._assets[asset], "x": 64, "y": 64},
                }
                for asset in gallery
            }
        self.things[data["name"]] = data
        self._post_order.append(data["name"])
        return data

    def _new_comment(self, subreddit: str, author: str, body: str, parent: str) -> dict[str, Any]:
        comment_id = self._next_id()
        parent_thing = self.things.get(parent, {})
        link_id = parent if parent.startswith("t3_") else str(parent_thing.get("link_id", parent))
        link = link_id.removeprefix("t3_")
        data: dict[str, Any] = {
            "id": comment_id,
            "name": f"t1_{comment_id}",
            "author": author,
            "body": body,
            "subreddit": subreddit,
            "subreddit_name_prefixed": f"r/{subreddit}",
            "link_id": link_id,
            "parent_id": parent,
            "permalink": f"/r/{subreddit}/comments/{link}/post/{comment_id}/",
            "score": 1,
            "ups": 1,
            "created_utc": self._tick(),
            "replies": "",
            "distinguished": None,
            "stickied": False,
        }
        self.things[data["name"]] = data
        self._comment_order.append(data["name"])
        return data

    def _message_reply(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        reply_id = self._next_id()
        data: dict[str, Any] = {
            "id": reply_id,
            "name": f"t4_{reply_id}",
            "author": self.bot,
            "dest": message.get("author"),
            "subject": "re: " + str(message.get("subject", "")),
            "body": text,
            "was_comment": False,
            "parent_id": message["name"],
            "first_message_name": message["name"],
            "created_utc": self._tick(),
            "replies": "",
            "subreddit": None,
            "distinguished": None,
        }
        self.things[data["name"]] = data
        return data

    def _notify(self, comment: dict[str, Any], kind: str, subject: str) -> None:
        self.inbox.append(comment["name"])
        self.unread.add(comment["name"])
        comment["_inbox"] = {"type": kind, "subject": subject}

    def _as_inbox(self, fullname: str) -> dict[str, Any]:
        thing = {k: v for k, v in self.things[fullname].items() if not k.startswith("_")}
        note = self.things[fullname].get("_inbox")
        thing["new"] = fullname in self.unread
        if note is not None:
            thing.update(
                was_comment=True,
                type=note["type"],
                subject=note["subject"],
                context=thing["permalink"] + "?context=3",
                dest=self.bot,
                link_title="a thread",
            )
        return thing

    # ---- the app ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The ASGI app; every path is served with and without its trailing slash."""
        routes: list[Route] = []
        table: list[tuple[str, Endpoint, list[str]]] = [
            ("/api/v1/access_token", self._token, ["POST"]),
            ("/api/v1/me", self._me, ["GET"]),
            ("/r/{subs}/comments", self._subreddit_comments, ["GET"]),
            ("/r/{sub}/api/info", self._info, ["GET"]),
            ("/api/info", self._info, ["GET"]),
            ("/message/unread", self._unread, ["GET"]),
            ("/message/inbox", self._all_inbox, ["GET"]),
            ("/api/read_message", self._read_message, ["POST"]),
            ("/api/comment", self._comment, ["POST"]),
            ("/user/{name}/comments", self._user_comments, ["GET"]),
            ("/user/{name}/submitted", self._user_submitted, ["GET"]),
            ("/comments/{post_id}", self._post_page, ["GET"]),
            ("/api/media/asset.json", self._media_asset, ["POST"]),
            ("/api/submit", self._submit, ["POST"]),
            ("/api/submit_gallery_post.json", self._submit_gallery, ["POST"]),
            (f"/{BUCKET}", self._s3_upload, ["POST"]),
            (f"/{BUCKET}/{{key:path}}", self._s3_get, ["GET"]),
        ]
        for path, endpoint, methods in table:
            wrapped = self._guarded(endpoint)
            routes.append(Route(path, wrapped, methods=methods))
            if not path.endswith(".json") and "{key:path}" not in path:
                routes.append(Route(path + "/", wrapped, methods=methods))
        return Starlette(routes=routes)

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def handle(request: Request) -> Response:
            path = request.url.path.rstrip("/")
            with self._lock:
                queue = self._faults.get(path)
                fault = queue.popleft() if queue else None
            if fault is not None:
                self.seen.append(Seen(request.method, path, fault.status))
                return JSONResponse(
                    {"message": "fault", "error": fault.status},
                    status_code=fault.status,
                    headers=fault.headers,
                )
            if not self._authorised(request, path):
                self.seen.append(Seen(request.method, path, 401))
                return JSONResponse({"message": "Unauthorized", "error": 401}, status_code=401)
            response = await endpoint(request)
            self.seen.append(Seen(request.method, path, response.status_code))
            if path.startswith(f"/{BUCKET}"):
                # A kept-alive TLS connection would hold the server's shutdown for seconds.
                response.headers["connection"] = "close"
            # Plenty of room left: prawcore's limiter then never sleeps.
            response.headers["x-ratelimit-remaining"] = "590"
            response.headers["x-ratelimit-used"] = "10"
            response.headers["x-ratelimit-reset"] = "300"
            return response

        return handle

    def _authorised(self, request: Request, path: str) -> bool:
        if path == "/api/v1/access_token" or path.startswith(f"/{BUCKET}"):
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token in self._tokens

    @staticmethod
    async def _form(request: Request) -> dict[str, str]:
        raw = (await request.body()).decode()
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    # ---- endpoints --------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        import base64

        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user, secret = "", ""
        if scheme.lower() != "basic" or (user, secret) != (self.client_id, self.client_secret):
            return JSONResponse({"message": "Unauthorized", "error": 401}, status_code=401)
        form = await self._form(request)
        if form.get("username") != self.bot or form.get("password") != self.password:
            return JSONResponse({"error": "invalid_grant"})
        token = uuid.uuid4().hex
        with self._lock:
            self._tokens.add(token)
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"}
        )

    async def _me(self, request: Request) -> Response:
        return JSONResponse({"name": self.bot, "id": "botid", "created_utc": 1.0})

    async def _subreddit_comments(self, request: Request) -> Response:
        subs = {s.casefold() for s in request.path_params["subs"].split("+")}
        limit = min(int(request.query_params.get("limit", "25")), 100)
        before = request.query_params.get("before")
        with self._lock:
            names = [
                n for n in self._comment_order if self.things[n]["subreddit"].casefold() in subs
            ]
            if before:
                # "before" means newer than the anchor; Reddit answers an unknown (deleted)
                # anchor with nothing.
                after = names.index(before) + 1 if before in names else len(names)
                names = names[after:][:limit]
            else:
                names = names[-limit:]
            children = [self._public(n) for n in reversed(names)]
        return JSONResponse(_listing("t1", children))

    def _public(self, fullname: str) -> dict[str, Any]:
        return {k: v for k, v in self.things[fullname].items() if not k.startswith("_")}

    async def _info(self, request: Request) -> Response:
        wanted = request.query_params.get("id", "").split(",")
        with self._lock:
            children = [
                {"kind": n[:2], "data": self._public(n)} for n in wanted if n in self.things
            ]
        return JSONResponse({"kind": "Listing", "data": _listing_data(children)})

    async def _unread(self, request: Request) -> Response:
        with self._lock:
            names = [n for n in self.inbox if n in self.unread]
            children = [{"kind": n[:2], "data": self._as_inbox(n)} for n in reversed(names)]
        return JSONResponse({"kind": "Listing", "data": _listing_data(children)})

    async def _all_inbox(self, request: Request) -> Response:
        with self._lock:
            children = [{"kind": n[:2], "data": self._as_inbox(n)} for n in reversed(self.inbox)]
        return JSONResponse({"kind": "Listing", "data": _listing_data(children)})

    async def _read_message(self, request: Request) -> Response:
        form = await self._form(request)
        with self._lock:
            for name in form.get("id", "").split(","):
                self.unread.discard(name)
        return JSONResponse({})

    async def _comment(self, request: Request) -> Response:
        form = await self._form(request)
        parent, text = form.get("thing_id", ""), form.get("text", "")
        with self._lock:
            parent_thing = self.things.get(parent)
            if parent_thing is None:
                errors = [["DELETED_COMMENT", "that comment is deleted", "parent"]]
                return JSONResponse({"json": {"errors": errors}})
            subreddit = parent_thing.get("subreddit") or ""
            if parent.startswith("t4_"):
                comment = self._message_reply(parent_thing, text)
            else:
                comment = self._new_comment(subreddit, self.bot, text, parent)
            kind = comment["name"][:2]
            thing = {"kind": kind, "data": self._public(comment["name"])}
        return JSONResponse({"json": {"errors": [], "data": {"things": [thing]}}})

    async def _user_comments(self, request: Request) -> Response:
        name = request.path_params["name"]
        limit = min(int(request.query_params.get("limit", "25")), 100)
        with self._lock:
            names = [n for n in self._comment_order if self.things[n]["author"] == name]
            children = [{"kind": "t1", "data": self._public(n)} for n in reversed(names[-limit:])]
        return JSONResponse({"kind": "Listing", "data": _listing_data(children)})

    async def _user_submitted(self, request: Request) -> Response:
        name = request.path_params["name"]
        limit = min(int(request.query_params.get("limit", "25")), 100)
        with self._lock:
            names = [n for n in self._post_order if self.things[n]["author"] == name]
            children = [{"kind": "t3", "data": self._public(n)} for n in reversed(names[-limit:])]
        return JSONResponse({"kind": "Listing", "data": _listing_data(children)})

    async def _post_page(self, request: Request) -> Response:
        fullname = f"t3_{request.path_params['post_id']}"
        with self._lock:
            if fullname not in self.things:
                return JSONResponse({"message": "Not Found", "error": 404}, status_code=404)
            post = {"kind": "t3", "data": self._public(fullname)}
            comments = [
                {"kind": "t1", "data": self._public(n)}
                for n in self._comment_order
                if self.things[n]["parent_id"] == fullname
            ]
        return JSONResponse(
            [
                {"kind": "Listing", "data": _listing_data([post])},
                {"kind": "Listing", "data": _listing_data(comments)},
            ]
        )

    async def _media_asset(self, request: Request) -> Response:
        form = await self._form(request)
        asset_id = uuid.uuid4().hex[:13]
        key = f"rte_images/{asset_id}/{form.get('filepath', 'image.png')}"
        with self._lock:
            self._assets[asset_id] = f"{self.media_url}/{key}"
        host = self.media_url.removeprefix("https:")
        return JSONResponse(
            {
                "args": {
                    "action": host,
                    "fields": [
                        {"name": "acl", "value": "private"},
                        {"name": "key", "value": key},
                        {"name": "Content-Type", "value": form.get("mimetype", "")},
                    ],
                },
                "asset": {
                    "asset_id": asset_id,
                    "processing_state": "incomplete",
                    "payload": {"filepath": form.get("filepath", "")},
                    "websocket_url": f"wss://127.0.0.1/media/{asset_id}",
                },
            }
        )

    async def _s3_upload(self, request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        key = str(form.get("key", ""))
        if upload is None or isinstance(upload, str) or not key:
            return Response("<Error><Code>InvalidArgument</Code></Error>", status_code=400)
        data = await upload.read()
        await form.close()
        with self._lock:
            self.uploaded[key] = data
        location = f"{self.media_url}/{key}"
        body = f"<PostResponse><Location>{location}</Location><Key>{key}</Key></PostResponse>"
        return Response(body, status_code=201, media_type="application/xml")

    async def _s3_get(self, request: Request) -> Response:
        with self._lock:
            data = self.uploaded.get(request.path_params["key"])
        if data is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404)
        return Response(data, media_type="application/octet-stream")

    async def _submit(self, request: Request) -> Response:
        form = await self._form(request)
        kind = form.get("kind", "self")
        with self._lock:
            error = self._check_submit(form.get("sr", ""), form.get("title", ""))
            if error:
                return JSONResponse({"json": {"errors": [error]}})
            url = form.get("url") if kind in ("image", "link") else None
            if kind == "image" and (
                url is None or url.removeprefix(self.media_url + "/") not in self.uploaded
            ):
                return JSONResponse({"json": {"errors": [["NO_MEDIA", "not uploaded", "url"]]}})
            post = self._new_post(
                form["sr"],
                self.bot,
                form["title"],
                selftext=form.get("text", ""),
                url=url,
                nsfw=form.get("nsfw") == "True",
            )
        if kind in ("image", "video", "videogif"):
            media = {"user_submitted_page": f"/user/{self.bot}/submitted/", "websocket_url": None}
            return JSONResponse({"json": {"errors": [], "data": media}})
        data = {
            "url": f"https://www.reddit.com{post['permalink']}",
            "drafts_count": 0,
            "id": post["id"],
            "name": post["name"],
        }
        return JSONResponse({"json": {"errors": [], "data": data}})

    async def _submit_gallery(self, request: Request) -> Response:
        body = json.loads(await request.body())
        with self._lock:
            error = self._check_submit(str(body.get("sr", "")), str(body.get("title", "")))
            assets = [str(item.get("media_id")) for item in body.get("items", [])]
            if not error and (not assets or any(a not in self._assets for a in assets)):
                error = ["NO_MEDIA", "unknown media", "items"]
            if error:
                return JSONResponse({"json": {"errors": [error]}})
            post = self._new_post(
                body["sr"],
                self.bot,
                body["title"],
                selftext=str(body.get("text", "")),
                nsfw=bool(body.get("nsfw")),
                gallery=assets,
            )
        data = {"url": post["url"], "id": post["name"]}
        return JSONResponse({"json": {"errors": [], "data": data}})

    @staticmethod
    def _check_submit(subreddit: str, title: str) -> list[str] | None:
        if not subreddit:
            return ["SUBREDDIT_REQUIRED", "pick a community", "sr"]
        if not title or len(title) > 300:
            return ["TOO_LONG", "this is too long (max: 300)", "title"]
        return None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> RedditFake:
        """Serve the API over http and the media bucket over https; returns once accepting."""
        self._tmp = Path(tempfile.mkdtemp(prefix="reddit-fake-"))
        cert, key, ca = _write_tls_files(self._tmp)
        self.ca_file = str(ca)
        api_port = self._serve(loopback_server(self.app()), "fake Reddit")
        tls = loopback_server(self.app(), ssl_certfile=str(cert), ssl_keyfile=str(key))
        media_port = self._serve(tls, "fake Reddit media")
        self.base_url = f"http://127.0.0.1:{api_port}"
        self.media_url = f"https://127.0.0.1:{media_port}/{BUCKET}"
        return self

    def _serve(self, server: uvicorn.Server, what: str) -> int:
        thread = threading.Thread(target=server.run, name=what, daemon=True)
        thread.start()
        self._servers.append((server, thread))
        return wait_started(server, thread, what, timeout=10)

    def stop(self) -> None:
        """Stop both servers and drop the TLS files."""
        for server, _ in self._servers:
            server.should_exit = True
        for _, thread in self._servers:
            thread.join(timeout=10)
        self._servers.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> RedditFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve() -> Iterator[RedditFake]:
    """Generator body for a pytest fixture: a started fake, stopped afterwards."""
    with RedditFake() as fake:
        yield fake


def _listing_data(children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"after": None, "before": None, "dist": len(children), "children": children}


def _listing(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "Listing", "data": _listing_data([{"kind": kind, "data": i} for i in items])}


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def _write_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf for 127.0.0.1 signed by it: (leaf cert, leaf key, CA cert)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reddit fake CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path, ca_path = folder / "leaf.pem", folder / "leaf.key", folder / "ca.pem"
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, ca_path
