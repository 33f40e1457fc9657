"""Everything built from one loaded config: providers, upstream clients, routing state.

A ``Runtime`` is immutable once started; a reload builds a new one and swaps the app's reference,
so in-flight requests finish on the table they started with (they hold their own reference).
"""

from __future__ import annotations

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

    @classmethod
    def build(cls, config: Config, registry: Registry | None = None, health: Health | None = None) -> "Runtime":
        registry = registry or Registry()
        providers = {name: registry.get(pc.type)(pc) for name, pc in config.providers.items()}
        return cls(config=config, providers=providers, pool=UpstreamPool(providers),
                   balancer=Balancer(config.price_for), health=health or AlwaysHealthy())

    def provider_for(self, deployment: Deployment) -> Provider:
        return self.providers[deployment.provider]

    async def close(self) -> None:
        await self.pool.close()
