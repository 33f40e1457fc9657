"""Load-balancing strategies over a model group's deployments.

``Balancer.order(group, exclude)`` gives the deployments to try, best first, skipping those that
cannot take a request now (open circuit, at ``max_concurrent``, at a deployment rate limit): the
``available`` callback decides that. Strategies:

- ``weighted``: smooth weighted round robin (nginx's algorithm): deterministic, exact shares over any
  window of sum(weights) requests, no randomness to drift.
- ``round_robin``: each deployment in turn.
- ``least_busy``: fewest requests in flight (ties by weight).
- ``latency``: lowest moving average of time to first byte; 5% of picks explore another deployment
  so a recovered one gets traffic again.
- ``cost``: cheapest by the price table (input + output price), ties by weight.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from gateway.config import Deployment, ModelGroup, Price

EXPLORE_SHARE = 0.05
LATENCY_ALPHA = 0.2


class DeploymentStats:
    __slots__ = ("in_flight", "latency_ms", "requests", "failures")

    def __init__(self) -> None:
        self.in_flight = 0
        self.latency_ms: float | None = None
        self.requests = 0
        self.failures = 0

    def observe_latency(self, ms: float) -> None:
        self.latency_ms = ms if self.latency_ms is None else (1 - LATENCY_ALPHA) * self.latency_ms + LATENCY_ALPHA * ms


class Balancer:
    def __init__(self, prices: Callable[[Deployment], Price | None], rng: random.Random | None = None,
                 previous: Balancer | None = None) -> None:
        """``previous``: the balancer of the table this one replaces (a reload); its in-flight counts,
        latencies and rotation carry over, so requests still running on the old table are counted."""
        self._price = prices
        self._rng = rng or random.Random()
        self._current: dict[str, float] = previous._current if previous else {}  # smooth WRR, by deployment
        self._cursor: dict[str, int] = previous._cursor if previous else {}  # round robin position, by group
        self.stats: dict[str, DeploymentStats] = previous.stats if previous else {}

    def stat(self, deployment_id: str) -> DeploymentStats:
        stats = self.stats.get(deployment_id)
        if stats is None:
            stats = self.stats[deployment_id] = DeploymentStats()
        return stats

    def order(self, group: ModelGroup, available: Callable[[Deployment], bool],
              exclude: Mapping[str, object] | None = None) -> list[Deployment]:
        candidates = [d for d in group.deployments if (not exclude or d.id not in exclude) and available(d)]
        if len(candidates) <= 1:
            return candidates
        strategy = group.strategy
        if strategy == "weighted":
            first = self._smooth_weighted(candidates)
        elif strategy == "round_robin":
            position = self._cursor.get(group.name, 0)
            self._cursor[group.name] = position + 1
            first = candidates[position % len(candidates)]
        elif strategy == "least_busy":
            first = min(candidates, key=lambda d: (self.stat(d.id).in_flight, -d.weight))
        elif strategy == "latency":
            first = self._lowest_latency(candidates)
        else:
            first = min(candidates, key=lambda d: (self._cost(d), -d.weight))
        rest = [d for d in candidates if d is not first]
        if strategy in ("least_busy", "latency", "cost"):
            rest.sort(key=lambda d: (self.stat(d.id).in_flight, -d.weight))
        else:
            rest.sort(key=lambda d: -d.weight)
        return [first, *rest]

    def _smooth_weighted(self, candidates: list[Deployment]) -> Deployment:
        total = 0.0
        best: Deployment | None = None
        for d in candidates:
            weight = d.weight
            current = self._current.get(d.id, 0.0) + weight
            self._current[d.id] = current
            total += weight
            if best is None or current > self._current[best.id]:
                best = d
        assert best is not None
        if total == 0:
            return candidates[0]
        self._current[best.id] -= total
        return best

    def _lowest_latency(self, candidates: list[Deployment]) -> Deployment:
        unmeasured = [d for d in candidates if self.stat(d.id).latency_ms is None]
        if unmeasured:
            return unmeasured[0]
        if self._rng.random() < EXPLORE_SHARE:
            return self._rng.choice(candidates)
        return min(candidates, key=lambda d: self.stat(d.id).latency_ms or 0.0)

    def _cost(self, d: Deployment) -> float:
        price = self._price(d)
        return price.input + price.output if price else float("inf")
