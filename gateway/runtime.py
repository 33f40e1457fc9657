"""Everything built from one loaded config: providers, upstream clients, routing state.

A ``Runtime`` is immutable once started; a reload builds a new one and swaps the app's reference,
so in-flight requests finish on the table they started with (they hold their own reference).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Config, Deployment
from gateway.resilience.health import AlwaysHealthy, Health
from gateway.routing.balancer import Balancer
from gateway.upstream import UpstreamPool
from providers.base import Provider
from providers.registry import Registry


@dataclass
class Runtime:
    config: Config
    providers: dict[str, Provider]
    pool: UpstreamPool
    balancer: Balancer
    health: Health
    # services owned by later features (state backend, governance, audit), keyed by name
    services: dict[str, Any] = field(default_factory=dict)
    active: int = 0  # upstream attempts and streams using this table's connections now

    @classmethod
    def build(cls, config: Config, registry: Registry | None = None, health: Health | None = None,
              previous: Runtime | None = None) -> "Runtime":
        """``health``: the circuit breakers (``gateway.resilience.circuits.Circuits``, kept by the app
        across reloads); ``previous``: the runtime this one replaces, whose load-balancing counters
        (in-flight, latency) carry over."""
        registry = registry or Registry()
        providers = {name: registry.get(pc.type)(pc) for name, pc in config.providers.items()}
        balancer = Balancer(config.price_for, previous=previous.balancer if previous is not None else None)
        return cls(config=config, providers=providers, pool=UpstreamPool(providers),
                   balancer=balancer, health=health or AlwaysHealthy())

    def provider_for(self, deployment: Deployment) -> Provider:
        return self.providers[deployment.provider]

    async def close(self) -> None:
        await self.pool.close()

    async def close_when_idle(self, grace: float) -> None:
        """Close once no attempt or stream uses this table (a reload replaced it): after ``grace``
        seconds at least, and at the latest when the longest provider ``timeout.total`` has passed."""
        loop = asyncio.get_running_loop()
        longest = max((p.config.timeout.total for p in self.providers.values()), default=0.0)
        deadline = loop.time() + max(grace, longest)
        try:
            await asyncio.sleep(grace)
            while self.active > 0 and loop.time() < deadline:
                await asyncio.sleep(1.0)
        finally:  # also when cancelled at shutdown
            await self.close()
