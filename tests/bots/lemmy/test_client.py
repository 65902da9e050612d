"""The typed Lemmy client against the fake instance: login, re-login, retries, version check."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from bots.lemmy.client import LemmyClient, LemmyError, UnsupportedLemmy
from core.retrying import Backoff
from tests.bots.lemmy.conftest import BOT, BOT_PASSWORD
from tests.peers.lemmy import FakeLemmy

QUICK = Backoff(first_s=0.01, max_s=0.05)


@pytest.fixture
async def made() -> AsyncIterator[list[LemmyClient]]:
    """Clients a test built, closed whatever the test's outcome."""
    clients: list[LemmyClient] = []
    yield clients
    for client in clients:
        await client.aclose()


def client_for(
    fake: FakeLemmy, made: list[LemmyClient], password: str = BOT_PASSWORD
) -> LemmyClient:
    client = LemmyClient(fake.base_url, BOT, password, backoff=QUICK)
    made.append(client)
    return client


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


async def test_an_instance_older_than_0_19_is_refused(
    lemmy: FakeLemmy, made: list[LemmyClient]
) -> None:
    lemmy.version = "0.18.5"
    client = client_for(lemmy, made)
    with pytest.raises(UnsupportedLemmy, match=r"0\.19"):
        await client.check_version()
    lemmy.version = "0.19.3"
    assert await client.check_version() == "0.19.3"


async def test_a_wrong_password_is_an_error_not_a_retry_loop(
    lemmy: FakeLemmy, made: list[LemmyClient]
) -> None:
    client = client_for(lemmy, made, password="wrong")
    with pytest.raises(LemmyError, match="incorrect_login"):
        await client.login()
    assert lemmy.count("POST", "/api/v3/user/login") == 1


async def test_an_expired_or_refused_token_logs_in_again(
    lemmy: FakeLemmy, made: list[LemmyClient]
) -> None:
    client = client_for(lemmy, made)
    await client.login()
    lemmy.expire_tokens()  # 0.19 answers 400 not_logged_in
    assert await client.mentions() == []
    lemmy.fail_next("/api/v3/user/replies", "401")
    assert await client.replies() == []
    assert lemmy.count("POST", "/api/v3/user/login") == 3
    bearer = [s for s in lemmy.seen if s.path == "/api/v3/user/replies"][-1].authorization
    assert bearer is not None
    assert bearer.startswith("Bearer ")


async def test_an_upload_is_retried_on_429_and_500_and_served_back(
    lemmy: FakeLemmy, made: list[LemmyClient]
) -> None:
    client = client_for(lemmy, made)
    lemmy.fail_next("/pictrs/image", "429")
    lemmy.fail_next("/pictrs/image", "500")
    data = png()
    url = await client.upload_image(data, "image/png", "a.png")
    assert lemmy.count("POST", "/pictrs/image") == 3
    assert lemmy.image(url) == data


async def test_a_comment_without_retry_fails_at_the_first_500(
    lemmy: FakeLemmy, made: list[LemmyClient]
) -> None:
    post = lemmy.add_post("alice", "art")
    client = client_for(lemmy, made)
    lemmy.fail_next("/api/v3/comment", "500")
    with pytest.raises(LemmyError) as caught:
        await client.create_comment(post.id, "hi", retry=False)
    assert caught.value.status == 500
    made = await client.create_comment(post.id, "hi @alice")
    assert made.comment.content == "hi @alice"
    assert lemmy.unread_mentions("alice") == 1
