"""Attempts, retries and fallbacks for one request over model groups.

``AttemptRunner.run(group, attempt)`` calls ``attempt(deployment)`` until one succeeds:

- within a group, at most ``retries + 1`` attempts, each on a deployment not yet tried while one is
  left (the balancer's order over the deployments that may take a request now: circuit not open,
  below ``max_concurrent``), only after a retryable failure (connect error, time-out, 429, 5xx, 529),
  with exponential back-off and jitter. A ``Retry-After`` (429, 503) is honoured before that same
  deployment is tried again, up to the group's ``max_retry_wait``: a deployment asking for longer is
  not tried again, and a wait that would pass the group's deadline is not waited for;
- the group's ``timeout`` bounds the time to the first byte over all its attempts (a stream's first
  frames are read inside the attempt, so a stream is retried or falls back only before its first
  byte reached the client); after that only the provider's ``read`` timeout applies;
- when the group cannot answer, its ``fallbacks`` are tried in order (``context_window_fallbacks``
  after a context-length error), each with its own retries and timeout. When nothing is left the
  last upstream error is answered; when no deployment could even be tried (every circuit open, or
  every deployment at ``max_concurrent``), 503 ``no_healthy_deployment`` at once, with a
  ``Retry-After`` of the time until the first half-open probe.

Every attempt's outcome goes to the circuit breakers (``rt.health.report``); a connect error is
reported as possibly this replica's own (``local=True``), see ``gateway.resilience.circuits``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.config import Deployment, ModelGroup
from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    NoHealthyDeployment,
    UpstreamConnectError,
    UpstreamTimeout,
)
from gateway.exchange import Attempt, Exchange
from gateway.metrics import Metrics
from gateway.resilience.health import Permit
from gateway.routing.balancer import DeploymentStats
from gateway.runtime import Runtime

T = TypeVar("T")

BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0


def backoff(attempt_number: int, rng: random.Random = random.Random()) -> float:
    """Exponential back-off with full jitter in [d/2, d]."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (attempt_number - 1)))
    return delay * (0.5 + rng.random() / 2)


def outcome_of(error: GatewayError) -> str:
    if isinstance(error, UpstreamConnectError):
        return "connect_error"
    return error.code or type(error).__name__


def fallback_reason(error: GatewayError) -> str:
    """The ``reason`` label of ``switchyard_fallbacks_total`` (bounded)."""
    if isinstance(error, ContextLengthExceeded):
        return "context_window"
    if isinstance(error, NoHealthyDeployment):
        return "no_healthy_deployment"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if error.status == 429:
        return "rate_limited"
    return "error"


class _Group:
    """One group's attempt budget: the deadline, what was tried, and when each may be tried again."""

    __slots__ = ("group", "deadline", "tried", "not_before", "last_error")

    def __init__(self, group: ModelGroup, now: float) -> None:
        self.group = group
        self.deadline = now + group.timeout
        self.tried: dict[str, GatewayError] = {}
        self.not_before: dict[str, float] = {}  # from Retry-After, on the loop's clock
        self.last_error: GatewayError | None = None

    def may_retry(self, deployment: Deployment, now: float) -> bool:
        return self.not_before.get(deployment.id, 0.0) - now <= self.group.max_retry_wait

    def failed(self, deployment: Deployment, error: GatewayError, now: float) -> None:
        self.tried[deployment.id] = error
        self.last_error = error
        if error.retry_after is not None:
            self.not_before[deployment.id] = now + error.retry_after


class AttemptRunner:
    def __init__(self, runtime: Runtime, metrics: Metrics, exchange: Exchange) -> None:
        self.rt = runtime
        self.metrics = metrics
        self.ex = exchange

    async def run(self, group: ModelGroup, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        queue = [group]  # the group, then fallbacks in order (a fallback's own fallbacks after those)
        seen = {group.name}
        upstream_error: GatewayError | None = None  # the last error an upstream actually gave
        unavailable: list[Deployment] = []
        reason: str | None = None
        for current in queue:  # grows while iterating
            if reason is not None:
                self.metrics.fallbacks.labels(reason).inc()
            try:
                return await self._run_group(current, attempt)
            except NoHealthyDeployment as error:
                unavailable += current.deployments
                targets, reason = current.fallbacks, fallback_reason(error)
            except ContextLengthExceeded as error:
                upstream_error, targets, reason = error, current.context_window_fallbacks, fallback_reason(error)
            except GatewayError as error:
                if not error.retryable:
                    raise
                upstream_error, targets, reason = error, current.fallbacks, fallback_reason(error)
            for name in targets:
                if name not in seen and name in self.rt.config.models:
                    seen.add(name)
                    queue.append(self.rt.config.models[name])
        if upstream_error is not None:
            raise upstream_error
        raise NoHealthyDeployment(
            f"no healthy deployment for model '{group.name}'"
            + (" or its fallbacks" if len(seen) > 1 else "")
            + ": every deployment's circuit is open or it is at its concurrency limit",
            retry_after=self.rt.health.retry_after(unavailable) or 1.0)

    async def _run_group(self, group: ModelGroup, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        budget = _Group(group, loop.time())
        for number in range(group.retries + 1):
            permit = await self._pick(budget, loop.time())
            if permit is None:
                raise budget.last_error or NoHealthyDeployment(f"no healthy deployment for model '{group.name}'")
            deployment = permit.deployment
            now = loop.time()
            wait = max(backoff(number) if number else 0.0, budget.not_before.get(deployment.id, 0.0) - now)
            if now + wait >= budget.deadline:
                await self.rt.health.report(permit, success=False, counts=False)  # release it untried
                raise budget.last_error or UpstreamTimeout(f"model '{group.name}' timed out before the first byte")
            if wait > 0:
                await asyncio.sleep(wait)
            error = await self._attempt(permit, attempt, budget.deadline - loop.time())
            if not isinstance(error, GatewayError):
                return error
            if not error.retryable:
                raise error
            budget.failed(deployment, error, loop.time())
            if loop.time() >= budget.deadline:
                raise error
        assert budget.last_error is not None
        raise budget.last_error

    async def _attempt(self, permit: Permit, attempt: Callable[[Deployment], Awaitable[T]],
                       remaining: float) -> Any:
        """One attempt: its result, or the error it ended with (reported to the breakers either way)."""
        deployment = permit.deployment
        health = self.rt.health
        rt = self.rt
        stats = rt.balancer.stat(deployment.id)
        stats.in_flight += 1
        rt.active += 1
        held = False
        started = time.perf_counter()
        try:
            async with asyncio.timeout(remaining):
                result = await attempt(deployment)
        except TimeoutError:
            error: GatewayError = UpstreamTimeout(
                f"model '{deployment.model_group}' gave no first byte within its timeout")
        except GatewayError as exc:
            error = exc
        except BaseException:  # cancelled (the client left) or a bug: the permit says nothing
            await health.report(permit, success=False, counts=False)
            raise
        else:
            latency = (time.perf_counter() - started) * 1000
            stats.observe_latency(latency)
            self._record(deployment, 200, latency, "success")
            await health.report(permit, success=True)
            held = _in_flight_until_closed(result, stats, rt)
            return result
        finally:
            if not held:
                stats.in_flight -= 1
                rt.active -= 1
        latency = (time.perf_counter() - started) * 1000
        self._record(deployment, error.status, latency, outcome_of(error))
        await health.report(permit, success=False, counts=error.counts_as_failure,
                            local=isinstance(error, UpstreamConnectError))
        return error

    async def _pick(self, budget: _Group, now: float) -> Permit | None:
        """The next deployment's permit: untried ones first, then any that may be tried again."""
        health = self.rt.health
        balancer = self.rt.balancer

        def available(d: Deployment) -> bool:
            limit = d.max_concurrent
            if limit is not None and balancer.stat(d.id).in_flight >= limit:
                return False
            return health.available(d)

        order = balancer.order(budget.group, available, exclude=budget.tried)
        if not order:
            order = [d for d in balancer.order(budget.group, available) if budget.may_retry(d, now)]
        ticket = self.ex.ticket  # governance: a deployment at its rpm/tpm limit is skipped, like an open circuit
        for deployment in order:
            permit = await health.acquire(deployment)
            if permit is None:
                continue
            if ticket is not None and not await ticket.claim(deployment):
                await health.report(permit, success=False, counts=False)  # release it untried
                continue
            return permit
        return None

    def _record(self, deployment: Deployment, status: int, latency_ms: float, outcome: str) -> None:
        self.ex.attempts.append(Attempt(deployment.id, deployment.provider, status, round(latency_ms, 3), outcome))
        self.ex.provider, self.ex.deployment = deployment.provider, deployment.id
        self.metrics.attempts.labels(deployment.id, outcome).inc()
        # time from sending to the upstream's answer (its first stream frames, for streams)
        self.metrics.upstream_duration.labels(deployment.provider).observe(latency_ms / 1000)


class _ReleasingUpstream:
    """Wraps a stream's upstream so the deployment (and the table) stay in use until the relay closes it."""

    __slots__ = ("_upstream", "_stats", "_runtime")

    def __init__(self, upstream: Any, stats: DeploymentStats, runtime: Runtime) -> None:
        self._upstream = upstream
        self._stats: DeploymentStats | None = stats
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._upstream, name)

    def close(self) -> None:
        if self._stats is not None:
            self._stats.in_flight -= 1
            self._runtime.active -= 1
            self._stats = None
        self._upstream.close()


def _in_flight_until_closed(result: Any, stats: DeploymentStats, runtime: Runtime) -> bool:
    """A streaming result (``LiveStream``) counts as in flight until its upstream is closed."""
    upstream = getattr(result, "upstream", None)
    if upstream is None or not callable(getattr(upstream, "close", None)):
        return False
    result.upstream = _ReleasingUpstream(upstream, stats, runtime)
    return True
