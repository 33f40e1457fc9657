"""Admin API for routing and resilience (master key only; registered on import by ``gateway.admin``).

    GET  /admin/deployments                 every deployment with its circuit, load and error rate
    GET  /admin/deployments/{id}            one of them
    POST /admin/deployments/{id}/circuit    {"state": "open" | "closed" | "auto"}: force until "auto"
    GET  /admin/providers                   providers with their deployments' health
    POST /admin/reload                      re-read the config file and swap it in atomically
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.admin import route
from gateway.config import Deployment
from gateway.config_reader import ConfigError
from gateway.errors import InvalidRequest, NotFound
from gateway.exchange import Exchange
from gateway.http import parse_json_body, read_body, send_json
from gateway.resilience.circuits import FORCED_STATES

if TYPE_CHECKING:
    from gateway.app import Switchyard

ADMIN_BODY_LIMIT = 64 * 1024


def deployment_item(gw: Switchyard, d: Deployment) -> dict[str, Any]:
    stats = gw.runtime.balancer.stats.get(d.id)
    item: dict[str, Any] = {
        "id": d.id, "object": "deployment", "model_group": d.model_group, "provider": d.provider, "model": d.model,
        "weight": d.weight, "max_concurrent": d.max_concurrent,
        "circuit": gw.runtime.health.state(d),
        "in_flight": stats.in_flight if stats else 0,
        "latency_ms": round(stats.latency_ms, 3) if stats and stats.latency_ms is not None else None,
        "error_rate": 0.0,
    }
    if gw.circuits is not None:
        item.update(gw.circuits.describe(d))
    return item


def deployment_or_404(gw: Switchyard, deployment_id: str) -> Deployment:
    d = gw.runtime.config.deployments.get(deployment_id)
    if d is None:
        raise NotFound(f"unknown deployment '{deployment_id}'", param="id")
    return d


async def json_body(receive, headers: dict[str, str]) -> dict[str, Any]:
    body = parse_json_body(await read_body(receive, headers, ADMIN_BODY_LIMIT), headers)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


@route("GET", r"/admin/deployments")
async def list_deployments(gw: Switchyard, scope, receive, send, ex: Exchange, headers) -> None:
    data = [deployment_item(gw, d) for d in gw.runtime.config.deployments.values()]
    await send_json(send, 200, {"object": "list", "data": data}, ex.headers())


@route("GET", r"/admin/deployments/(?P<deployment_id>[^/]+)")
async def get_deployment(gw: Switchyard, scope, receive, send, ex: Exchange, headers, deployment_id: str) -> None:
    await send_json(send, 200, deployment_item(gw, deployment_or_404(gw, deployment_id)), ex.headers())


@route("POST", r"/admin/deployments/(?P<deployment_id>[^/]+)/circuit")
async def force_circuit(gw: Switchyard, scope, receive, send, ex: Exchange, headers, deployment_id: str) -> None:
    d = deployment_or_404(gw, deployment_id)
    state = (await json_body(receive, headers)).get("state")
    if state not in (*FORCED_STATES, "auto"):
        raise InvalidRequest("'state' must be \"open\", \"closed\" or \"auto\"", param="state")
    if gw.circuits is None:
        raise InvalidRequest("circuit breakers are not running")
    await gw.circuits.force(d.id, state)
    await send_json(send, 200, deployment_item(gw, d), ex.headers())


@route("GET", r"/admin/providers")
async def list_providers(gw: Switchyard, scope, receive, send, ex: Exchange, headers) -> None:
    config = gw.runtime.config
    by_provider: dict[str, list[dict[str, Any]]] = {name: [] for name in config.providers}
    for d in config.deployments.values():
        by_provider.setdefault(d.provider, []).append(deployment_item(gw, d))
    data = []
    for name, items in by_provider.items():
        pc = config.providers[name]
        healthy = sum(1 for item in items if item["circuit"] != "open")
        status = "unused" if not items else ("healthy" if healthy == len(items) else ("down" if not healthy else "degraded"))
        data.append({"id": name, "object": "provider", "type": pc.type, "api_base": pc.api_base, "status": status,
                     "healthy_deployments": healthy, "deployments": items})
    await send_json(send, 200, {"object": "list", "data": data}, ex.headers())


@route("POST", r"/admin/reload")
async def reload_config(gw: Switchyard, scope, receive, send, ex: Exchange, headers) -> None:
    try:
        config = await gw.reloader.reload()
    except ConfigError as exc:
        error = InvalidRequest("the config file is invalid; the running config stays: " + "; ".join(exc.errors[:5]),
                               code="invalid_config")
        envelope = error.envelope()
        envelope["error"]["errors"] = exc.errors
        return await send_json(send, 400, envelope, ex.headers())
    payload = {"object": "reload", "status": "reloaded", "path": config.path, "loaded_at": gw.loaded_at,
               "models": len(config.models), "providers": len(config.providers),
               "deployments": len(config.deployments)}
    await send_json(send, 200, payload, ex.headers())

