"""The breaker state machine on its own: thresholds, the window, cooldown, the probe lease."""

from __future__ import annotations

from gateway.config import BreakerSettings
from gateway.resilience.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, Window

SETTINGS = BreakerSettings(failure_threshold=3, failure_rate=0.5, min_requests=10, window_seconds=10,
                           cooldown_seconds=5)


def test_consecutive_failures_open_it_and_a_success_resets_the_count():
    b = Breaker(SETTINGS)
    b.failure(0)
    b.failure(0)
    b.success(0)
    b.failure(0)
    b.failure(0)
    assert b.phase(0) == CLOSED
    assert b.failure(0) is True
    assert b.phase(0) == OPEN and b.acquire(1, lease=2) is None


def test_failure_rate_over_min_requests_opens_it():
    b = Breaker(BreakerSettings(failure_threshold=100, failure_rate=0.5, min_requests=10, window_seconds=10))
    for i in range(9):  # 4 failures in 9 requests: below min_requests
        (b.failure if i % 2 else b.success)(1.0)
    assert b.phase(1.0) == CLOSED
    b.failure(1.0)  # 10 requests, 5 failures: 50%
    assert b.phase(1.0) == OPEN


def test_the_window_forgets_old_requests():
    b = Breaker(BreakerSettings(failure_threshold=100, failure_rate=0.5, min_requests=4, window_seconds=10))
    b.failure(0)
    b.success(0)
    b.failure(0)
    b.success(11)  # the three above have left the window: 1 request, 0 failures
    b.failure(11.5)
    b.success(11.5)
    b.success(11.5)
    assert b.phase(11.5) == CLOSED and b.window.totals(11.5) == (4, 1)


def test_cooldown_then_exactly_one_probe_then_closed_on_success():
    b = Breaker(SETTINGS)
    for _ in range(3):
        b.failure(0)
    assert b.phase(4.9) == OPEN and b.acquire(4.9, lease=2) is None
    assert b.phase(5.0) == HALF_OPEN
    assert b.acquire(5.0, lease=2) == "probe"
    assert b.acquire(5.1, lease=2) is None  # the lease is held
    assert not b.may_pass(5.1)
    b.failure(5.2)  # a late outcome of a request from before: ignored
    b.probe_result(5.5, True)
    assert b.phase(5.5) == CLOSED and b.acquire(5.5, lease=2) == "pass"


def test_a_failed_probe_opens_it_for_another_cooldown():
    b = Breaker(SETTINGS)
    b.trip(0)
    assert b.acquire(5, lease=2) == "probe"
    b.probe_result(6, False)
    assert b.phase(10.9) == OPEN and b.phase(11) == HALF_OPEN


def test_a_probe_that_never_finishes_leaves_it_by_its_lease():
    b = Breaker(SETTINGS)
    b.trip(0)
    assert b.acquire(5, lease=2) == "probe"
    assert b.acquire(6.9, lease=2) is None
    assert b.acquire(7.0, lease=2) == "probe"  # the first lease expired: a new probe may go


def test_an_undecided_probe_releases_the_lease():
    b = Breaker(SETTINGS)
    b.trip(0)
    assert b.acquire(5, lease=30) == "probe"
    b.probe_result(5.1, None)
    assert b.phase(5.1) == HALF_OPEN and b.acquire(5.2, lease=30) == "probe"


def test_reconfigure_keeps_state_and_takes_new_settings():
    b = Breaker(SETTINGS)
    b.failure(0)
    b.failure(0)
    b.configure(BreakerSettings(failure_threshold=2))
    assert b.phase(0) == CLOSED and b.consecutive == 2
    b.failure(0)
    assert b.phase(0) == OPEN


def test_window_buckets():
    w = Window(10)
    w.add(0.5, 3, 1)
    w.add(9.5, 2, 2)
    assert w.totals(9.9) == (5, 3)
    assert w.totals(10.5) == (2, 2)  # bucket [0, 1) left the window
    w.add(20.0, 1, 0)
    assert w.totals(20.0) == (1, 0)
