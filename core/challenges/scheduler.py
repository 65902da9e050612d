"""``ChallengeScheduler``: APScheduler 3 jobs, kept in the bot's database, that call ``advance``.

One date job per phase time of each challenge (``challenge:<id>:<phase>``), plus a sweep every
``retry_seconds`` that retries failed steps and creates recurring challenges. Jobs are stored with
``misfire_grace_time=None`` and ``coalesce=True``: one missed while the bot was down runs once at
start. ``advance`` is idempotent, so a job that runs twice, or late, does nothing more.

The job store is synchronous SQLAlchemy (APScheduler 3 has no async store), so it never runs on
the event loop: the scheduler is APScheduler's background (thread) scheduler, jobs are added from a
worker thread, and a due job hands ``run_job`` back to the loop. On the loop, a synchronous write
could wait on an SQLite lock held by the store's own transaction, which cannot commit while the
loop is blocked. The jobs name the runner by the job store URL, so the same database after a
restart finds the new runner.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.engine import make_url

from core.challenges.runner import ChallengeRunner
from core.store.challenges import Challenge

log = logging.getLogger(__name__)

JOBS_TABLE = "challenge_jobs"
SWEEP_JOB = "challenges:sweep"
_RUNNERS: dict[str, ChallengeRunner] = {}
_LOOPS: dict[str, asyncio.AbstractEventLoop] = {}
# A job that runs longer than this (a horde outage during payout) is left to the next sweep.
JOB_TIMEOUT_S = 600.0


def sync_url(store_url: str) -> str:
    """The job store's URL for the store's database: the same file or server, a sync driver.

    PostgreSQL needs a synchronous driver (psycopg) installed for the job store.
    """
    url = make_url(store_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"no job store for a {backend} database")


async def run_job(runner_key: str, challenge_id: str | None) -> None:
    """What every stored job calls: advance one challenge, or (``None``) sweep them all."""
    runner = _RUNNERS.get(runner_key)
    if runner is None:
        log.warning(
            "challenge job for %s ran with no runner; it waits for the next start", runner_key
        )
        return
    if challenge_id is None:
        await runner.catch_up()
        return
    try:
        await runner.advance(challenge_id)
    except KeyError:
        log.info("challenge %s is gone; its job does nothing", challenge_id)


def run_job_from_thread(runner_key: str, challenge_id: str | None) -> None:
    """The stored jobs' function: run ``run_job`` on the bot's event loop and wait for it."""
    loop = _LOOPS.get(runner_key)
    if loop is None or loop.is_closed():
        log.warning("challenge job for %s found no running bot", runner_key)
        return
    future = asyncio.run_coroutine_threadsafe(run_job(runner_key, challenge_id), loop)
    try:
        future.result(timeout=JOB_TIMEOUT_S)
    except Exception:
        log.exception("challenge job %s failed; the sweep retries it", challenge_id)


class ChallengeScheduler:
    """Owns the APScheduler instance; start after the adapters, stop before them."""

    def __init__(
        self, runner: ChallengeRunner, store_url: str, *, schema: str | None = None
    ) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.runner = runner
        self._key = sync_url(store_url)
        self._pending: set[asyncio.Task[None]] = set()
        self._jobstore = SQLAlchemyJobStore(url=self._key, tablename=JOBS_TABLE, tableschema=schema)
        self._scheduler = BackgroundScheduler(
            jobstores={"default": self._jobstore},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        runner.on_change(self.schedule)

    async def start(self) -> None:
        """Catch up on everything due, then let stored jobs (missed ones at once) run."""
        _RUNNERS[self._key] = self.runner
        _LOOPS[self._key] = asyncio.get_running_loop()
        await self.runner.catch_up()
        await asyncio.to_thread(self._scheduler.start)
        await asyncio.to_thread(
            self._scheduler.add_job,
            run_job_from_thread,
            "interval",
            seconds=self.runner.config.retry_seconds,
            args=[self._key, None],
            id=SWEEP_JOB,
            replace_existing=True,
        )
        for challenge in await self.runner.repo.listed(("scheduled", "open", "voting"), limit=1000):
            await asyncio.to_thread(self._add_phase_jobs, challenge)

    async def stop(self) -> None:
        """Stop running jobs; they stay stored for the next start."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._scheduler.running:
            await asyncio.to_thread(self._scheduler.shutdown, wait=False)
            # The scheduler's thread may take a connection after its store closed the pool.
            await asyncio.to_thread(self._jobstore.engine.dispose)
        if _RUNNERS.get(self._key) is self.runner:
            del _RUNNERS[self._key]
            _LOOPS.pop(self._key, None)

    def schedule(self, challenge: Challenge) -> None:
        """Date jobs at the challenge's future phase times, written from a worker thread; what
        is due already is advanced at once, on the loop."""
        if not self._scheduler.running:
            return
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(asyncio.to_thread(self._add_phase_jobs, challenge))]
        if min(self._phase_times(challenge).values()) <= self.runner.now():
            tasks.append(loop.create_task(self._advance_now(challenge.id)))
        for task in tasks:
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _advance_now(self, challenge_id: str) -> None:
        try:
            await run_job(self._key, challenge_id)
        except Exception:
            log.exception("challenge %s could not advance; the sweep retries it", challenge_id)

    async def settled(self) -> None:
        """Wait until the jobs of every change so far are stored."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    @staticmethod
    def _phase_times(challenge: Challenge) -> dict[str, datetime]:
        return {
            "open": challenge.opens_at,
            "entries": challenge.entries_close_at,
            "voting": challenge.voting_close_at,
        }

    def _add_phase_jobs(self, challenge: Challenge) -> None:
        # Only future times: a job due at once would race the scheduler's thread, which runs and
        # removes it while this thread may still be replacing it.
        now = datetime.now(UTC)
        for phase, moment in self._phase_times(challenge).items():
            if moment <= now:
                continue
            self._scheduler.add_job(
                run_job_from_thread,
                "date",
                run_date=moment,
                args=[self._key, challenge.id],
                id=f"challenge:{challenge.id}:{phase}",
                replace_existing=True,
            )

    def job_ids(self) -> list[str]:
        """The stored jobs' ids (for tests and ``/challenge list`` diagnostics)."""
        return sorted(job.id for job in self._scheduler.get_jobs())
