"""The admin API (master key only). Features add routes to ``ROUTES``.

Lists answer ``{"object": "list", "data": [...]}``; errors use the same OpenAI envelope as /v1.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError, MethodNotAllowed, NotFound, UpstreamError
from gateway.exchange import Exchange
from gateway.http import send_json

if TYPE_CHECKING:
    from gateway.app import Switchyard

AdminHandler = Callable[..., Awaitable[None]]
ROUTES: list[tuple[str, re.Pattern[str], AdminHandler]] = []


def route(method: str, pattern: str):
    def register(handler: AdminHandler) -> AdminHandler:
        ROUTES.append((method, re.compile(f"^{pattern}$", re.IGNORECASE), handler))
        return handler
    return register


async def dispatch(gw: Switchyard, scope, receive, send, path: str, method: str, headers: dict[str, str],
                   ex: Exchange) -> None:
    allowed = []
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        if route_method != method:
            allowed.append(route_method)
            continue
        return await handler(gw, scope, receive, send, ex, headers, **match.groupdict())
    if allowed:
        raise MethodNotAllowed(f"method {method} is not allowed on {path}", headers={"allow": ", ".join(allowed)})
    raise NotFound(f"unknown route: {method} {path}")


def provider_or_404(gw: Switchyard, name: str):
    provider = gw.runtime.providers.get(name)
    if provider is None:
        raise NotFound(f"unknown provider '{name}'", param="name")
    return provider


@route("GET", r"/admin/providers/(?P<name>[^/]+)/models")
async def provider_models(gw: Switchyard, scope, receive, send, ex: Exchange, headers, name: str) -> None:
    """The vendor's own model list, through its native endpoint, in OpenAI's list shape."""
    provider = provider_or_404(gw, name)
    client = gw.runtime.pool.get(name)
    response = await client.send(provider.build_list_models())
    if response.status >= 400:
        raise provider.map_error(response)
    try:
        models: list[dict[str, Any]] = provider.parse_list_models(response)
    except GatewayError:
        raise
    except Exception as exc:
        raise UpstreamError(f"provider '{name}' answered its model list in an unexpected shape ({type(exc).__name__})")
    await send_json(send, 200, {"object": "list", "data": models}, ex.headers())


# feature modules register their admin routes on import
from gateway import admin_routing  # noqa: E402,F401
from gateway.governance import admin as governance_admin  # noqa: E402,F401
