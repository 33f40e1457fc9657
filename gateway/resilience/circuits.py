"""``Circuits``: the ``Health`` the pipeline uses — a circuit breaker per deployment.

Which failures count (``GatewayError.counts_as_failure``, reported by ``gateway.attempts``):

- the upstream's fault, counted by the whole fleet: 5xx, 529, 429 and time-outs (the upstream took
  the request and did not answer in time);
- this replica's own, counted by this replica only: connection failures (refused, DNS, TLS), which
  may be its own network's — with ``state.backend: redis`` they open this replica's local breaker
  and never the shared one;
- never: the client's fault (other 4xx, context-length errors), nor a client that went away.

With ``state.backend: memory`` every counted failure goes to the local breaker. With ``redis`` the
shared breaker (``gateway.resilience.shared``) rules while Redis answers; when Redis is down the
local breakers judge everything (seeded from the last shared view, so an open circuit stays open),
and on Redis's return the circuits they opened are handed over and the shared view resumes.

An operator's forced state (``POST /admin/deployments/{id}/circuit``) wins over both until ``auto``.
``acquire`` does no I/O unless the circuit is half-open (the fleet-wide probe lease); ``report``
never waits on Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from gateway.config import Config, Deployment
from gateway.metrics import Metrics
from gateway.resilience.breaker import CLOSED, HALF_OPEN, OPEN, STATE_VALUES, Breaker
from gateway.resilience.health import Permit
from gateway.resilience.shared import LEASE_CAP_SECONDS, SharedCircuits, View
from gateway.state.backend import StateBackend

log = logging.getLogger("switchyard.circuit")

GAUGE_SECONDS = 0.5
FORCED_STATES = ("open", "closed")


class Circuits:
    def __init__(self, config: Config, metrics: Metrics, state: StateBackend,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.backend = state
        self.clock = clock
        self.deployments: dict[str, Deployment] = {}
        self.local: dict[str, Breaker] = {}
        self.leases: dict[str, float] = {}
        # an operator's forced state set here: "open" | "closed", or "auto" overriding a shared one
        self.forced: dict[str, str] = {}
        self._outage_trips: set[str] = set()
        self._pending_force: dict[str, str | None] = {}
        self._ticker: asyncio.Task | None = None
        self.shared: SharedCircuits | None = None
        if state.shared:
            self.shared = SharedCircuits(state, clock, lambda: self.deployments)
            self.shared.on_down = self._redis_down
            self.shared.on_resync = self._resync
        self.configure(config)

    # -- life cycle -----------------------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """Take a (re)loaded deployment table; breakers of deployments whose id survives keep their state."""
        deployments = config.deployments
        for dep_id in set(self.deployments) - set(deployments):
            self.local.pop(dep_id, None)
            self.forced.pop(dep_id, None)
            try:
                self.metrics.circuit_state.remove(dep_id)
            except KeyError:
                pass
        for dep_id, d in deployments.items():
            breaker = self.local.get(dep_id)
            if breaker is None:
                self.local[dep_id] = Breaker(d.circuit_breaker)
            else:
                breaker.configure(d.circuit_breaker)
            group = config.models[d.model_group]
            self.leases[dep_id] = min(group.timeout, LEASE_CAP_SECONDS) + 1.0
        self.deployments = deployments
        self.publish()

    async def start(self) -> None:
        if self.shared is not None:
            await self.shared.start()
        self.publish()
        self._ticker = asyncio.ensure_future(self._tick())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.shared is not None:
            await self.shared.close()

    async def _tick(self) -> None:
        while True:  # open -> half-open happens with time alone: keep the gauge honest
            await asyncio.sleep(GAUGE_SECONDS)
            self.publish()

    def publish(self) -> None:
        gauge = self.metrics.circuit_state
        for d in self.deployments.values():
            gauge.labels(d.id).set(STATE_VALUES[self.state_of(d.id)])

    # -- Health ---------------------------------------------------------------------------------

    def forced_state(self, deployment_id: str) -> str | None:
        forced = self.forced.get(deployment_id)
        if forced is not None:
            return None if forced == "auto" else forced
        if self.shared is not None:
            view = self.shared.views.get(deployment_id)
            if view is not None:
                return view.forced
        return None

    def _view(self, deployment_id: str) -> View | None:
        shared = self.shared
        if shared is None or not shared.active:
            return None
        return shared.views.get(deployment_id)

    def state_of(self, deployment_id: str) -> str:
        forced = self.forced_state(deployment_id)
        if forced is not None:
            return CLOSED if forced == "closed" else OPEN
        now = self.clock()
        breaker = self.local.get(deployment_id)
        phase = breaker.phase(now) if breaker is not None else CLOSED
        if phase == OPEN:
            return OPEN
        view = self._view(deployment_id)
        if view is not None and view.opened:
            return OPEN if now < view.open_until else HALF_OPEN
        return phase

    def state(self, deployment: Deployment) -> str:
        return self.state_of(deployment.id)

    def available(self, deployment: Deployment) -> bool:
        """No I/O: whether a request could be let through now (closed, or a half-open probe is free)."""
        forced = self.forced_state(deployment.id)
        if forced is not None:
            return forced == "closed"
        now = self.clock()
        breaker = self.local.get(deployment.id)
        if breaker is not None and not breaker.may_pass(now):
            return False
        view = self._view(deployment.id)
        return view is None or not view.opened or (now >= view.open_until and now >= view.busy_until)

    async def acquire(self, deployment: Deployment) -> Permit | None:
        forced = self.forced_state(deployment.id)
        if forced is not None:
            return Permit(deployment) if forced == "closed" else None
        now = self.clock()
        breaker = self.local.get(deployment.id)
        if breaker is not None and not breaker.may_pass(now):
            return None
        permit = Permit(deployment)
        view = self._view(deployment.id)
        if view is not None and view.opened:
            if now < view.open_until or now < view.busy_until:
                return None
            assert self.shared is not None
            allowed, token = await self.shared.acquire_probe(deployment, self.leases.get(deployment.id, 10.0))
            if not allowed:
                return None
            permit.probe, permit.token = token is not None, token
        if breaker is not None and breaker.opened:
            verdict = breaker.acquire(self.clock(), self.leases.get(deployment.id, 10.0))
            if verdict is None:  # the local state changed while the probe lease was asked for
                await self.report(permit, success=False, counts=False)
                return None
            permit.local_probe = verdict == "probe"
        return permit

    async def report(self, permit: Permit, *, success: bool, counts: bool = True, local: bool = False) -> None:
        d = permit.deployment
        now = self.clock()
        verdict: bool | None = True if success else (False if counts else None)
        shared = self.shared
        active = shared is not None and shared.active
        breaker = self.local.get(d.id)
        watch = not success or permit.token is not None or permit.local_probe  # may change the state
        before = self.state_of(d.id) if watch else None
        if breaker is not None:
            if permit.local_probe:
                breaker.probe_result(now, verdict)
            elif success:
                breaker.success(now)
            elif counts and (local or not active):
                if breaker.failure(now) and shared is not None and not active:
                    self._outage_trips.add(d.id)
        if permit.token is not None:
            if active:
                assert shared is not None
                shared.probe_result(d, permit.token, verdict)
        elif active and (success or (counts and not local)):
            assert shared is not None
            shared.add(d.id, success)
        if watch:
            after = self.state_of(d.id)
            if after != before:
                self.metrics.circuit_state.labels(d.id).set(STATE_VALUES[after])

    def retry_after(self, deployments: Iterable[Deployment] | None = None) -> float | None:
        """Seconds until the first of these deployments lets a half-open probe through."""
        now = self.clock()
        waits = []
        for d in (deployments if deployments is not None else self.deployments.values()):
            waits.append(self._wait(d, now))
        return float(max(1, math.ceil(min(waits)))) if waits else None

    def _wait(self, d: Deployment, now: float) -> float:
        forced = self.forced_state(d.id)
        if forced == "open":
            return d.circuit_breaker.cooldown_seconds
        if forced == "closed":
            return 0.0
        until = 0.0
        breaker = self.local.get(d.id)
        if breaker is not None and breaker.opened:
            until = max(breaker.open_until, breaker.probe_until)
        view = self._view(d.id)
        if view is not None and view.opened:
            until = max(until, view.open_until, view.busy_until)
        return max(0.0, until - now)

    # -- the operator's hand --------------------------------------------------------------------

    async def force(self, deployment_id: str, state: str) -> None:
        """Force "open" or "closed" until "auto" (shared by the fleet when Redis answers)."""
        value = None if state == "auto" else state
        shared = self.shared
        if shared is not None and shared.active and await shared.force(deployment_id, value):
            self.forced.pop(deployment_id, None)
            self._pending_force.pop(deployment_id, None)
        elif shared is not None:
            self.forced[deployment_id] = state  # "auto" here overrides a shared forced state
            self._pending_force[deployment_id] = value
        elif value is None:
            self.forced.pop(deployment_id, None)
        else:
            self.forced[deployment_id] = value
        self.publish()

    def describe(self, d: Deployment) -> dict[str, Any]:
        """The breaker's part of ``GET /admin/deployments``."""
        now = self.clock()
        view = self._view(d.id)
        if view is not None:
            requests, failures = view.requests, view.failures
        else:
            breaker = self.local.get(d.id)
            requests, failures = breaker.window.totals(now) if breaker is not None else (0, 0)
        state = self.state_of(d.id)
        wait = self._wait(d, now) if state == OPEN else 0.0
        return {
            "circuit": state,
            "forced": self.forced_state(d.id),
            "error_rate": round(failures / requests, 4) if requests else 0.0,
            "window_requests": requests,
            "window_failures": failures,
            "half_open_in": round(wait, 3) if state == OPEN else None,
            "shared": view is not None,
        }

    # -- Redis down and back --------------------------------------------------------------------

    def _redis_down(self) -> None:
        """Judge locally from now on, starting from the last shared view (an open circuit stays open)."""
        assert self.shared is not None
        now = self.clock()
        for dep_id, view in self.shared.views.items():
            breaker = self.local.get(dep_id)
            if breaker is not None and view.opened and not breaker.opened:
                breaker.trip(now, open_for=max(0.0, view.open_until - now))
                self._outage_trips.add(dep_id)
        log.warning("circuit breakers judge on local state until Redis returns")

    async def _resync(self) -> bool:
        """Hand over forced states and circuits opened while Redis was away (or that it did not take):
        True when all is handed over, and the shared view may rule again."""
        assert self.shared is not None
        for dep_id, value in list(self._pending_force.items()):
            if await self.shared.force(dep_id, value):
                self._pending_force.pop(dep_id, None)
                self.forced.pop(dep_id, None)
        now = self.clock()
        for dep_id in list(self._outage_trips):
            breaker = self.local.get(dep_id)
            d = self.deployments.get(dep_id)
            if breaker is not None and d is not None and breaker.opened:
                if not await self.shared.trip(d, max(0.0, breaker.open_until - now)):
                    return False
                breaker.reset()
            self._outage_trips.discard(dep_id)
        return not self._pending_force
