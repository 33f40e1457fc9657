"""The interface between the request pipeline and deployment health (circuit breakers).

The pipeline asks ``available(deployment)`` (no I/O) while ordering candidates, then
``acquire(deployment)`` before an attempt: ``None`` means skip this deployment (open circuit, or a
half-open probe already under way elsewhere); otherwise a ``Permit`` that the pipeline hands back
through ``report`` once the attempt's outcome is known (``counts=False``: the outcome says nothing
about the deployment's health; ``local=True``: a failure that may be this replica's own, such as a
refused connection). Implementations keep ``acquire`` and ``report`` free of I/O on the common path
(closed circuit). ``gateway.resilience.circuits.Circuits`` is the real one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gateway.config import Deployment


@dataclass(slots=True)
class Permit:
    deployment: Deployment
    probe: bool = False  # this attempt is the fleet's half-open probe
    token: str | None = None  # the probe lease's token (shared breakers)
    local_probe: bool = False  # this attempt is this replica's local half-open probe


class Health(Protocol):
    def available(self, deployment: Deployment) -> bool: ...

    async def acquire(self, deployment: Deployment) -> Permit | None: ...

    async def report(self, permit: Permit, *, success: bool, counts: bool = True, local: bool = False) -> None: ...

    def state(self, deployment: Deployment) -> str: ...

    def retry_after(self, deployments: Iterable[Deployment] | None = None) -> float | None: ...


class AlwaysHealthy:
    """No circuit breaking: every deployment is always available."""

    def available(self, deployment: Deployment) -> bool:
        return True

    async def acquire(self, deployment: Deployment) -> Permit | None:
        return Permit(deployment)

    async def report(self, permit: Permit, *, success: bool, counts: bool = True, local: bool = False) -> None:
        return None

    def state(self, deployment: Deployment) -> str:
        return "closed"

    def retry_after(self, deployments: Iterable[Deployment] | None = None) -> float | None:
        return None
