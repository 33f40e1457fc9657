"""Attempts, retries and fallbacks for one request over model groups.

``AttemptRunner.run(group, attempt)`` calls ``attempt(deployment)`` until one succeeds:

- within a group, at most ``retries + 1`` attempts, each on a deployment not yet tried while one is
  left (the balancer's order, skipping deployments whose circuit is open or that are at
  ``max_concurrent``), only after a retryable failure (connect error, time-out, 429, 5xx, 529), with
  exponential back-off and jitter; a ``Retry-After`` is honoured when the same deployment is tried
  again, up to ``max_retry_wait`` (a longer wait is not waited for);
- the group's ``timeout`` bounds the time to the first byte over all its attempts;
- when the group cannot answer, its ``fallbacks`` are tried in order (``context_window_fallbacks``
  after a context-length error); when nothing is left the last error is answered, or
  503 ``no_healthy_deployment`` when no deployment could even be tried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.config import Deployment, ModelGroup
from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    NoHealthyDeployment,
    UpstreamConnectError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from gateway.exchange import Attempt, Exchange
from gateway.metrics import Metrics
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


class AttemptRunner:
    def __init__(self, runtime: Runtime, metrics: Metrics, exchange: Exchange) -> None:
        self.rt = runtime
        self.metrics = metrics
        self.ex = exchange

    async def run(self, group: ModelGroup, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        groups: list[tuple[ModelGroup, str | None]] = [(group, None)]
        seen = {group.name}
        last_error: GatewayError | None = None
        index = 0
        while index < len(groups):
            current, reason = groups[index]
            index += 1
            if reason is not None:
                self.metrics.fallbacks.labels(reason).inc()
            try:
                return await self._run_group(current, attempt)
            except ContextLengthExceeded as error:
                last_error = error
                targets, next_reason = current.context_window_fallbacks, "context_window"
            except GatewayError as error:
                if not (error.retryable or isinstance(error, NoHealthyDeployment)):
                    raise
                last_error = error
                targets = current.fallbacks
                next_reason = "no_healthy_deployment" if isinstance(error, NoHealthyDeployment) else "error"
            for name in targets:
                if name not in seen and name in self.rt.config.models:
                    seen.add(name)
                    groups.append((self.rt.config.models[name], next_reason))
        assert last_error is not None
        raise last_error

    async def _run_group(self, group: ModelGroup, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + group.timeout
        tried: dict[str, GatewayError | None] = {}
        last_error: GatewayError | None = None
        last_deployment: Deployment | None = None
        for number in range(group.retries + 1):
            permit = await self._pick(group, tried)
            if permit is None:
                if last_error is not None:
                    raise last_error
                raise NoHealthyDeployment(
                    f"no healthy deployment for model '{group.name}': every deployment is unavailable",
                    retry_after=self.rt.health.retry_after())
            deployment = permit.deployment
            if number > 0:
                wait = backoff(number)
                if (deployment is last_deployment and isinstance(last_error, UpstreamRateLimited)
                        and last_error.retry_after is not None):
                    wait = max(wait, last_error.retry_after)
                await asyncio.sleep(min(wait, max(0.0, deadline - loop.time())))
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self.rt.health.report(permit, success=True, counts=False)
                raise last_error or UpstreamTimeout(f"model '{group.name}' timed out before the first byte")
            started = time.perf_counter()
            stats = self.rt.balancer.stat(deployment.id)
            stats.in_flight += 1
            try:
                async with asyncio.timeout(remaining):
                    result = await attempt(deployment)
            except TimeoutError:
                error: GatewayError = UpstreamTimeout(
                    f"model '{group.name}' gave no first byte within its timeout ({group.timeout:g}s)")
            except GatewayError as exc:
                error = exc
            else:
                latency = (time.perf_counter() - started) * 1000
                stats.observe_latency(latency)
                self._record(deployment, 200, latency, "success")
                await self.rt.health.report(permit, success=True)
                return result
            finally:
                stats.in_flight -= 1
            latency = (time.perf_counter() - started) * 1000
            self._record(deployment, error.status, latency, outcome_of(error))
            await self.rt.health.report(permit, success=False, counts=error.counts_as_failure)
            if not error.retryable:
                raise error
            tried[deployment.id] = error
            last_error, last_deployment = error, deployment
            if (isinstance(error, UpstreamRateLimited) and error.retry_after is not None
                    and error.retry_after > group.max_retry_wait and len(tried) >= len(group.deployments)):
                raise error  # waiting that long is not worth it: fall back, or answer the 429
            if loop.time() >= deadline:
                raise error
        assert last_error is not None
        raise last_error

    async def _pick(self, group: ModelGroup, tried: dict[str, GatewayError | None]):
        """The next deployment's permit: untried ones first, then any that may be retried."""
        def available(d: Deployment) -> bool:
            limit = d.max_concurrent
            return limit is None or self.rt.balancer.stat(d.id).in_flight < limit

        order = self.rt.balancer.order(group, available, exclude=tried)
        if not order:
            order = [d for d in self.rt.balancer.order(group, available) if _may_retry(tried.get(d.id), group)]
        for deployment in order:
            permit = await self.rt.health.acquire(deployment)
            if permit is not None:
                return permit
        return None

    def _record(self, deployment: Deployment, status: int, latency_ms: float, outcome: str) -> None:
        self.ex.attempts.append(Attempt(deployment.id, deployment.provider, status, round(latency_ms, 3), outcome))
        self.ex.provider, self.ex.deployment = deployment.provider, deployment.id
        self.metrics.attempts.labels(deployment.id, outcome).inc()
        # time from sending to the upstream's answer (its first stream frames, for streams)
        self.metrics.upstream_duration.labels(deployment.provider).observe(latency_ms / 1000)


def _may_retry(error: GatewayError | None, group: ModelGroup) -> bool:
    if isinstance(error, UpstreamRateLimited) and error.retry_after is not None:
        return error.retry_after <= group.max_retry_wait
    return True
