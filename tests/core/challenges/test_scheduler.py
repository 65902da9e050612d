"""The APScheduler wiring: jobs live in the bot's database and a job missed while down runs once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core.challenges.config import ChallengesConfig
from core.challenges.runner import ChallengeRunner
from core.challenges.scheduler import ChallengeScheduler, sync_url
from core.horde.client import HordeClient
from core.store import SecretBox
from tests.core.challenges.venues import VenueAdapter
from tests.core.store.conftest import Backend, backend  # noqa: F401 - fixture


def test_job_store_url_is_the_store_database_with_a_sync_driver() -> None:
    assert sync_url("sqlite:///var/bot.db") == "sqlite:///var/bot.db"
    assert sync_url("sqlite+aiosqlite:////abs/bot.db") == "sqlite:////abs/bot.db"
    assert sync_url("postgresql://u@h/db").startswith("postgresql+psycopg://")


async def test_missed_job_runs_once_at_the_next_start(backend: Backend) -> None:  # noqa: F811
    url = backend.url
    store = await backend.open(SecretBox(b"k" * 32))
    venue = VenueAdapter("discord")
    horde = HordeClient("0000000000", base_url="http://127.0.0.1:9/api")
    config = ChallengesConfig(venues=("discord:1",), retry_seconds=3600)
    try:
        runner = ChallengeRunner(store=store, horde=horde, venues={"discord": venue}, config=config)
        first = ChallengeScheduler(runner, url, schema=backend.schema)
        await first.start()
        opens = datetime.now(UTC) + timedelta(seconds=1)
        created = await runner.create(theme="owls", created_by="t", opens_at=opens)
        assert created is not None
        await first.settled()
        assert f"challenge:{created.id}:open" in first.job_ids()
        await first.stop()  # the bot is down when the job is due
        await asyncio.sleep(1.5)
        assert venue.posts == []

        again = ChallengeRunner(store=store, horde=horde, venues={"discord": venue}, config=config)
        second = ChallengeScheduler(again, url, schema=backend.schema)
        await second.start()
        await asyncio.sleep(0.5)
        await second.stop()
        assert len(venue.posts) == 1
        found = await again.repo.get(created.id)
        assert found is not None
        assert found.state == "open"
    finally:
        await horde.aclose()
        await store.close()
