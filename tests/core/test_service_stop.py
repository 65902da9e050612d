"""A stop while a request is on its way to the horde: it is recorded, so a restart tracks it
instead of sending (and paying for) it a second time. Real stack of ``test_inbox``."""

from __future__ import annotations

import asyncio

from core.horde.wire import GenerationInput, RequestAsync
from core.messages import AckKind
from core.store.generations import GenerationState
from tests.core.horde.conftest import embedded_horde, make_embedded_horde  # noqa: F401
from tests.core.test_inbox import Bot, bot, catalog  # noqa: F401 - fixtures


async def test_a_stop_mid_submit_waits_for_the_horde_id_and_records_it(bot: Bot) -> None:  # noqa: F811
    entered = asyncio.Event()
    release = asyncio.Event()
    sent: list[str] = []
    original = bot.client.generate

    async def slow_generate(request: GenerationInput) -> RequestAsync:
        entered.set()
        await release.wait()
        accepted = await original(request)
        sent.append(accepted.id)
        return accepted

    bot.client.generate = slow_generate  # type: ignore[method-assign]
    ack = await bot.ask("dream", "a lighthouse --steps 4")
    assert ack.kind is AckKind.ACCEPTED, ack
    assert ack.generation_id is not None
    await asyncio.wait_for(entered.wait(), 10)

    stopping = asyncio.create_task(bot.service.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "the stop waits for the request on its way"
    release.set()
    await asyncio.wait_for(stopping, 10)

    stored = await bot.store.generation(ack.generation_id)
    assert stored is not None
    assert stored.state is GenerationState.SUBMITTED
    assert sent == [stored.horde_id]
