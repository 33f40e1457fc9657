"""The ASGI application: lifespan, dispatch, authentication, and one record per request.

Routing is a table lookup on the normalised path (doubled slashes, dot segments and a trailing slash
removed; matched without regard to case), and authentication decides on that same normalised path,
so no spelling of a path reaches a handler without the check that applies to it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway import admin, endpoints
from gateway.auth import ANONYMOUS, Authenticator, Identity, bearer_token
from gateway.config import Config, load_config
from gateway.config_reader import ConfigError
from gateway.errors import (
    GatewayError,
    InternalError,
    InvalidApiKey,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)
from gateway.exchange import Exchange
from gateway.governance.admission import GovernanceHooks
from gateway.governance.service import Governance
from gateway.hooks import Hooks
from gateway.http import ClientGone, normalize_path, request_headers, request_id_from, send_bytes, send_error, send_json
from gateway.metrics import CONTENT_TYPE, Metrics
from gateway.recorder import Recorder
from gateway.reload import Reloader
from gateway.resilience import wiring
from gateway.runtime import Runtime

if TYPE_CHECKING:
    from gateway.resilience.circuits import Circuits
    from gateway.state import StateBackend

log = logging.getLogger("switchyard")

GC_YOUNG_THRESHOLD = 10_000  # allocations between young-generation collections (CPython's default: 700)

Handler = Callable[..., Awaitable[None]]

# (normalised lower-case path) -> {method: handler}
V1_ROUTES: dict[str, dict[str, Handler]] = {
    "/chat/completions": {"POST": endpoints.chat_completions},
    "/embeddings": {"POST": endpoints.embeddings},
    "/models": {"GET": endpoints.list_models},
}


# the endpoint name recorded in metrics, logs and audit (also for requests refused before the handler)
ENDPOINT_NAMES = {"/chat/completions": "chat.completions", "/embeddings": "embeddings", "/models": "models"}


def route_key(lower: str) -> str:
    return lower[3:] if lower.startswith("/v1/") else lower


class Switchyard:
    def __init__(self, config: Config | None = None, config_path: str | None = None) -> None:
        self.config_path = config_path
        self._initial_config = config
        self.metrics = Metrics()
        self.hooks: Hooks = Hooks()
        self.runtime: Runtime = None  # type: ignore[assignment]  # set at start-up
        self.auth: Authenticator = Authenticator("")
        self.recorder = Recorder(self.metrics)
        # governance: virtual keys, limits, budgets, policies, cost, spend, audit (gateway.governance)
        self.governance = Governance(self.metrics)
        self.hooks = GovernanceHooks(self.governance)
        self.recorder.sinks.append(self.governance.record)
        self.loaded_at = int(time.time())
        self.config_error: list[str] | None = None
        self.started = False
        # features (routing state, governance) attach start-up and shutdown steps here
        self.on_startup: list[Callable[[Switchyard], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[Switchyard], Awaitable[None]]] = []
        self.readiness_checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        # the state backend (gateway.state) and circuit breakers, built at start-up, kept across reloads
        self.state: StateBackend | None = None
        self.circuits: Circuits | None = None
        self.reloader = Reloader(self)
        self._closing: set[asyncio.Task] = set()  # replaced runtimes waiting for their last request

    # -- lifespan ---------------------------------------------------------------------------------

    async def startup(self) -> None:
        config = self._initial_config
        if config is None:
            try:
                config = load_config(self.config_path)
            except ConfigError as exc:
                self.config_error = exc.errors
                log.error("no valid config loaded", extra={"errors": exc.errors})
                self.started = True
                return
        await self.install(config)
        for step in self.on_startup:
            await step(self)
        self.reloader.listen_for_sighup()
        self.started = True
        settle_heap()

    async def install(self, config: Config) -> None:
        """Build a runtime for ``config`` and swap it in (used at start-up and by reload)."""
        health = await wiring.prepare(self, config)
        await self.governance.install(config, self.state)
        runtime = Runtime.build(config, health=health, previous=self.runtime)
        old = self.runtime
        self.runtime = runtime
        self.auth = Authenticator(config.server.master_key, self.governance.virtual_lookup(config))
        self.recorder.log_requests = config.server.log_requests
        self.loaded_at = int(time.time())
        self.config_error = None
        if old is not None:  # requests running on the old table finish on it; then its connections close
            task = asyncio.ensure_future(old.close_when_idle(config.server.shutdown_grace_seconds or 1))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def shutdown(self) -> None:
        for step in self.on_shutdown:
            try:
                await step(self)
            except Exception:
                log.exception("shutdown step failed")
        try:
            await self.governance.close()  # flushes spend and audit while the state backend is still open
        except Exception:
            log.exception("closing governance failed")
        self.reloader.stop_listening()
        for task in list(self._closing):  # replaced tables close now
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self.runtime is not None:
            await self.runtime.close()
        await wiring.close(self)

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: dict[str, Any], receive, send) -> None:
        path = normalize_path(scope["path"])
        lower = path.lower()
        method = scope["method"]
        headers = request_headers(scope)
        if lower.startswith("/health/"):
            return await self._health(lower, method, send, {"x-request-id": request_id_from(headers)})
        if lower == "/metrics":
            return await self._metrics(headers, method, send)
        ex = Exchange(request_id=request_id_from(headers), endpoint=lower)
        if self.runtime is None:
            return await send_error(send, InternalError("no valid configuration is loaded", code="config_error"),
                                    ex.headers())
        is_admin = lower == "/admin" or lower.startswith("/admin/")
        if is_admin:
            return await self._admin(scope, receive, send, path, method, headers, ex)
        self.metrics.in_flight.inc()
        identity: Identity | None = None
        try:
            route, model_id = self._route(path, lower)
            if route is not None:
                ex.endpoint = "models" if model_id is not None else ENDPOINT_NAMES[route_key(lower)]
            identity = await self._authenticate(headers)
            ex.key_name, ex.team = identity.name, identity.team
            handler = route.get(method) if route else None
            if handler is None:
                if route:
                    raise MethodNotAllowed(f"method {method} is not allowed on {path}; use {', '.join(route)}",
                                           headers={"allow": ", ".join(route)})
                raise NotFound(f"unknown route: {method} {path}")
            if model_id is not None:
                await endpoints.get_model(self, scope, receive, send, ex, headers, identity, model_id)
            else:
                await handler(self, scope, receive, send, ex, headers, identity)
        except GatewayError as error:
            ex.status, ex.error_code = error.status, error.code
            if identity is not None:
                await self._limit_headers(identity, ex)
            await send_error(send, error, ex.headers())
        except ClientGone:
            ex.status, ex.error_code, ex.disconnected = 499, "client_disconnected", True
        except asyncio.CancelledError:
            ex.status, ex.error_code, ex.disconnected = 499, "client_disconnected", True
            raise
        except Exception:
            log.exception("unhandled error", extra={"request_id": ex.request_id})
            error = InternalError("the gateway failed to handle this request")
            ex.status, ex.error_code = error.status, error.code
            try:
                await send_error(send, error, ex.headers())
            except Exception:
                pass
        finally:
            self.metrics.in_flight.dec()
            self.recorder.finish(ex)

    async def _limit_headers(self, identity: Identity, ex: Exchange) -> None:
        """A limited key's refused request still carries its x-ratelimit-* headers (never fails the answer)."""
        try:
            await self.hooks.limit_headers(self.runtime, identity, ex)
        except Exception:
            log.exception("rate-limit headers failed", extra={"request_id": ex.request_id})

    def _route(self, path: str, lower: str) -> tuple[dict[str, Handler] | None, str | None]:
        rest, prefix_len = route_key(lower), (3 if lower.startswith("/v1/") else 0)
        route = V1_ROUTES.get(rest)
        if route is not None:
            return route, None
        if rest.startswith("/models/") and len(rest) > 8:
            return {"GET": endpoints.get_model}, path[prefix_len + 8:]
        return None, None

    async def _authenticate(self, headers: dict[str, str]) -> Identity:
        if self.auth.open_v1:
            return ANONYMOUS
        identity = await self.auth.identify(bearer_token(headers.get("authorization")))
        if identity is None:
            raise InvalidApiKey("Incorrect API key provided. Send a valid key as 'Authorization: Bearer <key>'.")
        return identity

    # -- operational endpoints ------------------------------------------------------------------

    async def _health(self, lower: str, method: str, send, headers: dict[str, str]) -> None:
        if method not in ("GET", "HEAD"):
            return await send_error(send, MethodNotAllowed(f"method {method} is not allowed", headers={"allow": "GET"}),
                                    headers)
        if lower == "/health/live":
            return await send_json(send, 200, {"status": "ok"}, headers)
        if lower != "/health/ready":
            return await send_error(send, NotFound(f"unknown route: {method} {lower}"), headers)
        if self.runtime is None:
            payload = {"status": "unavailable", "checks": {"config": "error"}, "errors": self.config_error or []}
            return await send_json(send, 503, payload, headers)
        checks: dict[str, str] = {"config": "ok"}
        degraded = False
        for name, check in self.readiness_checks.items():
            try:
                ok = await asyncio.wait_for(check(), timeout=1.0)
            except Exception:
                ok = False
            checks[name] = "ok" if ok else "down"
            degraded = degraded or not ok
        await send_json(send, 200, {"status": "degraded" if degraded else "ok", "checks": checks}, headers)

    async def _metrics(self, headers: dict[str, str], method: str, send) -> None:
        if self.runtime is not None and self.runtime.config.server.metrics_auth:
            identity = await self.auth.identify(bearer_token(headers.get("authorization")))
            if identity is None or not identity.is_master:
                return await send_error(send, InvalidApiKey("/metrics needs the master key"))
        if method not in ("GET", "HEAD"):
            return await send_error(send, MethodNotAllowed(f"method {method} is not allowed", headers={"allow": "GET"}))
        await send_bytes(send, 200, self.metrics.render(), [(b"content-type", CONTENT_TYPE.encode()),
                                                             (b"x-request-id", request_id_from(headers).encode())])

    async def _admin(self, scope, receive, send, path: str, method: str, headers: dict[str, str],
                     ex: Exchange) -> None:
        try:
            identity = await self.auth.identify(bearer_token(headers.get("authorization")))
            if identity is not None and not identity.is_master:
                raise PermissionDenied("the admin API needs the master key; virtual keys may only call /v1")
            if not self.auth.has_master:
                raise InvalidApiKey("the admin API is disabled: set server.master_key to use it")
            if identity is None:
                raise InvalidApiKey("Incorrect API key provided. The admin API needs the master key.")
            await admin.dispatch(self, scope, receive, send, path, method, headers, ex)
        except GatewayError as error:
            await send_error(send, error, ex.headers())
        except ClientGone:
            pass


def settle_heap() -> None:
    """Once start-up is done: collect, then move every object alive now (modules, config, providers,
    clients) out of the cyclic collector's sight, and let the young generation grow larger before it
    is collected. Collections then scan only what requests allocate; under load that is ~10% of a
    request's CPU saved (docs/benchmark.md). Reference counting frees everything as before."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


def create_app(config_path: str | None = None) -> Switchyard:
    """The application factory (``uvicorn --factory gateway.app:create_app``; used per worker process)."""
    import os

    from gateway import logs

    logs.configure(os.environ.get("SWITCHYARD_LOG_LEVEL", "info"))
    return Switchyard(config_path=config_path)
