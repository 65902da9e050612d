"""The worker's session counters and the summary line it logs."""

from __future__ import annotations

from worker_node.stats import WorkerStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_summary_reports_speed_failures_and_kudos() -> None:
    clock = Clock()
    stats = WorkerStats(clock)
    stats.popped()
    stats.finished(seconds=2.0, sampling_s=1.0, steps=20)
    stats.submitted(10.0, censored=False)
    stats.popped()
    stats.finished(seconds=4.0, sampling_s=3.0, steps=20)
    stats.submitted(5.0, censored=True)
    stats.faulted(refused=True)
    stats.faulted(refused=False)
    stats.lost()
    clock.now += 1800
    snap = stats.snapshot()
    assert (snap.done, snap.faulted, snap.refused, snap.censored, snap.images) == (2, 2, 1, 1, 2)
    assert snap.its == 10.0
    assert snap.seconds_per_job == 3.0
    assert snap.kudos_per_hour == 30.0
    line = snap.line()
    assert "2 jobs done, 2 faulted (1 refused)" in line
    assert "10.00 it/s, 3.00 s/job" in line
    assert "15.0 kudos (30/h)" in line
    assert "1 submits lost" in line


def test_hidden_download_share() -> None:
    stats = WorkerStats(Clock())
    assert stats.snapshot().hidden_fetch_share == 1.0
    stats.fetched(2.0, waited_s=0.0)
    stats.fetched(2.0, waited_s=1.0)
    assert stats.snapshot().hidden_fetch_share == 0.75
    stats.fetched(1.0, waited_s=5.0)  # waiting longer than the fetch counts as the whole fetch
    assert stats.snapshot().hidden_fetch_share == 0.6


def test_expected_job_seconds_follows_recent_jobs() -> None:
    stats = WorkerStats(Clock())
    assert stats.expected_job_seconds() is None
    stats.finished(seconds=10.0, sampling_s=9.0, steps=1)
    assert stats.expected_job_seconds() == 10.0
    for _ in range(20):
        stats.finished(seconds=1.0, sampling_s=1.0, steps=1)
    expected = stats.expected_job_seconds()
    assert expected is not None
    assert 1.0 <= expected < 1.1
