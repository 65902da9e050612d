"""The whole-bot test harness itself: a restart on the same folder resumes, the fake worker
answers, and the reply comes once."""

from __future__ import annotations

from pathlib import Path

from core.messages import AckKind, ChannelRef, Invocation, ReplyTarget, UserRef
from tests.support.bot_stack import bot_stack, fake_worker, write_bot_config
from tests.support.recording_adapter import RecordingAdapter


def dream(event_id: str) -> Invocation:
    return Invocation(
        event_id=event_id,
        user=UserRef("console", "ann"),
        channel=ChannelRef("console", "room"),
        target=ReplyTarget("console", {"room": "room"}),
        text="a lighthouse --steps 4",
    )


async def test_a_request_made_before_a_restart_is_answered_once_after_it(
    tmp_path: Path, stack_tiny_model: str
) -> None:
    config = write_bot_config(tmp_path, tiny_model=stack_tiny_model, worker=False)
    first = RecordingAdapter("console")
    async with bot_stack(config, lambda stack: [first], with_worker=False) as stack:
        ack = await stack.inbox.submit(dream("e1"))
        assert ack.kind is AckKind.ACCEPTED, ack
    assert first.sent == []

    second = RecordingAdapter("console")
    async with bot_stack(config, lambda stack: [second], with_worker=False) as stack:
        again = await stack.inbox.submit(dream("e1"))
        assert again.kind is AckKind.DUPLICATE
        async with fake_worker(stack) as served:
            reply = await second.next_reply(timeout=60)
            await stack.service.wait_idle()
    assert reply.generation_id == ack.generation_id
    assert reply.images
    assert reply.error is None
    assert len(second.sent) == 1
    assert [job.payload.prompt.startswith("a lighthouse") for job in served if job.payload] == [
        True
    ]
