"""One deployment's circuit breaker as a pure state machine (time is passed in; no I/O).

::

    closed --(failure_threshold consecutive failures, or failure_rate of >= min_requests
              requests in the last window_seconds)--> open
    open   --(cooldown_seconds elapsed)--> half_open
    half_open --(one probe: a lease that expires)--> closed on success / open again on failure

The window is ``BUCKETS`` buckets of ``window_seconds / BUCKETS`` each, the same layout the Redis
scripts use (``gateway.resilience.lua``), so a replica on its own judges exactly as the fleet does.
Outcomes reported while open or half-open (requests that started before the circuit opened) are
ignored: only the probe decides.
"""

from __future__ import annotations

from gateway.config import BreakerSettings

BUCKETS = 10

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # the switchyard_circuit_state gauge


class Window:
    """Request and failure counts over a sliding window of ``BUCKETS`` buckets."""

    __slots__ = ("width", "epochs", "requests", "failures")

    def __init__(self, window_seconds: float) -> None:
        self.width = max(0.001, window_seconds / BUCKETS)
        self.epochs = [-1] * BUCKETS
        self.requests = [0] * BUCKETS
        self.failures = [0] * BUCKETS

    def add(self, now: float, requests: int, failures: int) -> None:
        epoch = int(now // self.width)
        slot = epoch % BUCKETS
        if self.epochs[slot] != epoch:
            self.epochs[slot], self.requests[slot], self.failures[slot] = epoch, 0, 0
        self.requests[slot] += requests
        self.failures[slot] += failures

    def totals(self, now: float) -> tuple[int, int]:
        oldest = int(now // self.width) - BUCKETS
        requests = failures = 0
        for slot in range(BUCKETS):
            if self.epochs[slot] > oldest:
                requests += self.requests[slot]
                failures += self.failures[slot]
        return requests, failures

    def clear(self) -> None:
        self.epochs = [-1] * BUCKETS


def should_trip(settings: BreakerSettings, consecutive: int, requests: int, failures: int) -> bool:
    if consecutive >= settings.failure_threshold:
        return True
    return requests >= settings.min_requests and failures > 0 and failures >= settings.failure_rate * requests


class Breaker:
    """Closed / open / half-open for one deployment, in one process."""

    __slots__ = ("settings", "opened", "open_until", "probe_until", "consecutive", "window")

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self.opened = False
        self.open_until = 0.0
        self.probe_until = 0.0  # the half-open probe's lease; 0: no probe under way
        self.consecutive = 0
        self.window = Window(settings.window_seconds)

    def configure(self, settings: BreakerSettings) -> None:
        if settings != self.settings:
            if settings.window_seconds != self.settings.window_seconds:
                self.window = Window(settings.window_seconds)
            self.settings = settings

    def phase(self, now: float) -> str:
        if not self.opened:
            return CLOSED
        return OPEN if now < self.open_until else HALF_OPEN

    def may_pass(self, now: float) -> bool:
        """Whether a request could be let through now (closed, or half-open with no probe under way)."""
        return not self.opened or (now >= self.open_until and now >= self.probe_until)

    def acquire(self, now: float, lease: float) -> str | None:
        """``"pass"`` (closed), ``"probe"`` (this request is the half-open probe) or None (skip)."""
        if not self.opened:
            return "pass"
        if now < self.open_until or now < self.probe_until:
            return None
        self.probe_until = now + lease
        return "probe"

    def record(self, now: float, ok: int, failed: int, trailing: int, had_success: bool) -> bool:
        """Outcomes of ordinary requests (a batch, in order: ``trailing`` failures came after the last
        success). Returns True when this trips the breaker."""
        if self.opened:
            return False
        self.consecutive = trailing if had_success else self.consecutive + failed
        self.window.add(now, ok + failed, failed)
        if not failed:
            return False  # only a failure can trip it (the rate is checked when one comes)
        requests, failures = self.window.totals(now)
        if should_trip(self.settings, self.consecutive, requests, failures):
            self.trip(now)
            return True
        return False

    def success(self, now: float) -> None:
        self.record(now, 1, 0, 0, True)

    def failure(self, now: float) -> bool:
        return self.record(now, 0, 1, 1, False)

    def probe_result(self, now: float, success: bool | None) -> None:
        """The probe's verdict: True closes, False opens again, None releases the lease undecided."""
        self.probe_until = 0.0
        if success is None or not self.opened:
            return
        if success:
            self.reset()
        else:
            self.trip(now)

    def trip(self, now: float, open_for: float | None = None) -> None:
        self.opened = True
        self.open_until = now + (self.settings.cooldown_seconds if open_for is None else open_for)
        self.probe_until = 0.0
        self.consecutive = 0
        self.window.clear()

    def reset(self) -> None:
        self.opened = False
        self.open_until = self.probe_until = 0.0
        self.consecutive = 0
        self.window.clear()

    def error_rate(self, now: float) -> float | None:
        requests, failures = self.window.totals(now)
        return round(failures / requests, 4) if requests else None
