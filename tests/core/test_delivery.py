"""Delivery through a platform that fails: the service waits the outage out and delivers once,
records a refusal instead of retrying it forever, and tells delivery listeners only of real posts.
Runs on the real stack of ``test_inbox`` (embedded horde over HTTP, SQLite store)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from core.contract import DeliveryError
from core.messages import AckKind, Reply, ReplyTarget
from core.service import StoredGeneration
from tests.core.horde.conftest import embedded_horde, make_embedded_horde  # noqa: F401
from tests.core.test_inbox import MODEL, WORKER, Bot, bot, catalog  # noqa: F401 - fixtures
from tests.support.horde_worker import finish_one
from tests.support.recording_adapter import RecordingAdapter


class FailingAdapter(RecordingAdapter):
    """Fails the first ``failures`` sends with ``error``, then posts."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__("console")
        self.failures = failures
        self.error = error
        self.attempts = 0

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        return await super().send(target, reply)


@pytest.fixture
async def fast_retries(bot: Bot) -> Bot:  # noqa: F811
    # The real 5 s first wait would only slow the test; the schedule is what is under test.
    bot.service._settings = dataclasses.replace(bot.service._settings, delivery_retry_s=0.01)
    return bot


async def delivered(stack: Bot, adapter: FailingAdapter) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    async def listener(generation: StoredGeneration, reply: Reply, message_id: str) -> None:
        seen.append((generation.id, message_id))

    stack.service.on_delivered(listener)
    stack.service.attach(adapter)
    ack = await stack.ask("dream", "a lighthouse --steps 4")
    assert ack.kind is AckKind.ACCEPTED, ack
    await finish_one(stack.worker, WORKER, [MODEL])
    await asyncio.wait_for(stack.service.wait_idle(), 30)
    return seen


async def test_an_outage_is_waited_out_and_the_reply_posted_once(fast_retries: Bot) -> None:
    adapter = FailingAdapter(3, DeliveryError("503 from the platform"))
    seen = await delivered(fast_retries, adapter)
    assert adapter.attempts == 4
    assert len(adapter.sent) == 1
    generation_id = adapter.sent[0][1].generation_id
    assert seen == [(generation_id, "console-message-1")]
    assert generation_id is not None
    stored = await fast_retries.store.generation(generation_id)
    assert stored is not None
    assert stored.delivered_message_id == "console-message-1"


async def test_a_refusal_is_recorded_not_retried_and_not_announced(fast_retries: Bot) -> None:
    adapter = FailingAdapter(99, DeliveryError("403 channel gone", retryable=False))
    seen = await delivered(fast_retries, adapter)
    assert adapter.attempts == 1
    assert seen == []
