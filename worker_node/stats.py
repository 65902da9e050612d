"""What the worker has done this session: counters, speeds and kudos, and the lines it logs.

The loop records each job as it ends; ``snapshot`` freezes the totals for the periodic summary
(reGen's status block, reduced to what an operator acts on: is it fast, is it failing, does it
earn, do downloads stall the GPU). ``expected_job_seconds`` is a recent average the loop uses to
judge whether a queued job can still finish within its TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Weight of the newest job in the running estimate of seconds per job.
_EWMA_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """The session's totals at one moment."""

    uptime_s: float
    popped: int
    done: int
    faulted: int
    refused: int
    censored: int
    images: int
    lost_submits: int
    kudos: float
    steps: int
    sampling_s: float
    job_s: float
    fetch_s: float = 0.0
    fetch_wait_s: float = 0.0

    @property
    def its(self) -> float:
        """Denoising iterations per second of pipeline time."""
        return self.steps / self.sampling_s if self.sampling_s > 0 else 0.0

    @property
    def seconds_per_job(self) -> float:
        """Mean inference seconds of a finished job."""
        return self.job_s / self.done if self.done else 0.0

    @property
    def hidden_fetch_share(self) -> float:
        """The share of download time (LoRAs, TIs, source images) the engine did not wait for."""
        if self.fetch_s <= 0:
            return 1.0
        return max(0.0, 1.0 - self.fetch_wait_s / self.fetch_s)

    @property
    def kudos_per_hour(self) -> float:
        """Kudos earned per hour of uptime (extrapolated within the first hour)."""
        return self.kudos * 3600 / self.uptime_s if self.uptime_s > 0 else 0.0

    def line(self) -> str:
        """The one-line summary the worker logs periodically and at exit."""
        return (
            f"{self.done} jobs done, {self.faulted} faulted ({self.refused} refused), "
            f"{self.censored} images censored, {self.lost_submits} submits lost; "
            f"{self.its:.2f} it/s, {self.seconds_per_job:.2f} s/job, "
            f"{self.hidden_fetch_share:.0%} of downloads hidden; "
            f"{self.kudos:.1f} kudos ({self.kudos_per_hour:.0f}/h) in {self.uptime_s:.0f} s"
        )


class WorkerStats:
    """Counters the loop updates as jobs end; all calls come from the event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._popped = self._done = self._faulted = self._refused = 0
        self._censored = self._images = self._lost = self._steps = 0
        self._kudos = self._sampling_s = self._job_s = 0.0
        self._fetch_s = self._fetch_wait_s = 0.0
        self._recent_job_s: float | None = None

    def popped(self) -> None:
        """A job was taken from the horde."""
        self._popped += 1

    def finished(self, seconds: float, sampling_s: float, steps: int) -> None:
        """A job's inference finished (its images are on their way)."""
        self._done += 1
        self._job_s += seconds
        self._sampling_s += sampling_s
        self._steps += steps
        if self._recent_job_s is None:
            self._recent_job_s = seconds
        else:
            self._recent_job_s += _EWMA_WEIGHT * (seconds - self._recent_job_s)

    def fetched(self, fetch_s: float, *, waited_s: float) -> None:
        """A job's downloads took ``fetch_s``; the engine sat waiting for them ``waited_s``."""
        self._fetch_s += fetch_s
        self._fetch_wait_s += min(waited_s, fetch_s)

    def faulted(self, *, refused: bool) -> None:
        """A job was handed back as faulted; ``refused`` when it was never run."""
        self._faulted += 1
        self._refused += int(refused)

    def submitted(self, reward: float, *, censored: bool) -> None:
        """One image was accepted by the horde."""
        self._images += 1
        self._censored += int(censored)
        self._kudos += reward

    def lost(self) -> None:
        """A submit was refused for good (expired, duplicate, unknown job) or kept failing."""
        self._lost += 1

    def expected_job_seconds(self) -> float | None:
        """A recent average of seconds per job, or None before the first job."""
        return self._recent_job_s

    def snapshot(self) -> StatsSnapshot:
        """The totals now."""
        return StatsSnapshot(
            uptime_s=self._clock() - self._started,
            popped=self._popped,
            done=self._done,
            faulted=self._faulted,
            refused=self._refused,
            censored=self._censored,
            images=self._images,
            lost_submits=self._lost,
            kudos=self._kudos,
            steps=self._steps,
            sampling_s=self._sampling_s,
            job_s=self._job_s,
            fetch_s=self._fetch_s,
            fetch_wait_s=self._fetch_wait_s,
        )
