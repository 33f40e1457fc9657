"""Where governance plugs into the request path (virtual keys, limits, budgets, policies, cost).

The default hooks admit everything; ``gateway.governance`` supplies the real ones.
"""

from __future__ import annotations

from typing import Any

from gateway.auth import Identity
from gateway.config import ModelGroup
from gateway.exchange import Exchange


class Hooks:
    async def admit(self, runtime, identity: Identity, exchange: Exchange, group: ModelGroup,
                    body: dict[str, Any]) -> dict[str, Any]:
        """Check access, policies and limits before routing; may return an edited body; raises to refuse."""
        return body

    async def settle(self, runtime, identity: Identity, exchange: Exchange, response: bytes | None = None) -> None:
        """After the upstream answered (before a non-stream response is sent): charge usage and cost.
        ``response`` is the body about to be sent (non-streams), for an audit that keeps bodies."""
        return None

    def may_use(self, identity: Identity, model: str) -> bool:
        return True

    async def limit_headers(self, runtime, identity: Identity, exchange: Exchange) -> None:
        """Add the caller's rate-limit headers to a response that did not pass the limit step."""
        return None
