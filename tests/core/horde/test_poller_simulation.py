"""The poller against the simulated horde of bench/polling.py: few calls per request, within budget.

These are behavioural bounds on call counts in virtual time, not timing assertions.
"""

from __future__ import annotations

import statistics

import pytest

from bench.polling import SimResult, Workload, simulate
from core.horde.poller import PollPolicy

WORKLOAD = Workload(requests=150, seed=11)


@pytest.fixture(scope="module")
def eta() -> SimResult:
    return simulate("eta", WORKLOAD)


@pytest.fixture(scope="module")
def fixed() -> SimResult:
    return simulate("fixed", WORKLOAD)


def test_every_request_completes(eta: SimResult) -> None:
    assert len(eta.calls) == WORKLOAD.requests


def test_median_request_costs_at_most_four_horde_calls(eta: SimResult) -> None:
    # submit + at most two checks + one status
    assert eta.median_calls() <= 4


def test_eta_polling_beats_a_fixed_five_second_poll(eta: SimResult, fixed: SimResult) -> None:
    assert statistics.fmean(fixed.calls) >= 1.8 * statistics.fmean(eta.calls)


def test_status_is_fetched_exactly_once_per_request(eta: SimResult) -> None:
    assert set(eta.horde.status_calls.values()) == {1}


def test_calls_stay_inside_the_global_and_per_request_budgets(eta: SimResult) -> None:
    assert eta.busiest_second() <= PollPolicy().max_calls_per_s
    assert eta.closest_checks_s() >= PollPolicy().min_interval_s


def test_results_are_not_held_back_for_long(eta: SimResult) -> None:
    # Checking rarely must not mean telling the user late: the median result arrives within 10 s.
    assert statistics.median(eta.latency_s) <= 10.0


def test_a_burst_of_arrivals_is_spread_inside_the_budget() -> None:
    burst = simulate(
        "eta", Workload(requests=80, mean_gap_s=0.05, seed=3), PollPolicy(max_calls_per_s=4)
    )
    assert len(burst.calls) == 80
    assert burst.busiest_second() <= 4
