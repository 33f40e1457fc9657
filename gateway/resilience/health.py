"""The interface between the request pipeline and deployment health (circuit breakers).

The pipeline asks ``acquire(deployment)`` before an attempt: ``None`` means skip this deployment
(open circuit, or a half-open probe already under way elsewhere); otherwise a ``Permit`` that the
pipeline hands back through ``report`` once the attempt's outcome is known. Implementations keep
``acquire`` free of I/O on the common path (closed circuit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.config import Deployment


@dataclass(slots=True)
class Permit:
    deployment: Deployment
    probe: bool = False  # this attempt is the half-open probe


class Health(Protocol):
    async def acquire(self, deployment: Deployment) -> Permit | None: ...

    async def report(self, permit: Permit, *, success: bool, counts: bool = True) -> None: ...

    def state(self, deployment: Deployment) -> str: ...

    def retry_after(self) -> float | None: ...


class AlwaysHealthy:
    """No circuit breaking: every deployment is always available."""

    async def acquire(self, deployment: Deployment) -> Permit | None:
        return Permit(deployment)

    async def report(self, permit: Permit, *, success: bool, counts: bool = True) -> None:
        return None

    def state(self, deployment: Deployment) -> str:
        return "closed"

    def retry_after(self) -> float | None:
        return None
