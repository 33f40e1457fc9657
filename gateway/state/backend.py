"""The state backends. See ``gateway.state`` for the contract."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.config import StateConfig
from gateway.metrics import Metrics

log = logging.getLogger("switchyard.state")
T = TypeVar("T")


class StateBackend:
    """Base: a process-local backend. ``redis`` is None; ``run`` always takes the local path."""

    kind = "memory"
    redis: Any = None

    def __init__(self, config: StateConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.prefix = config.key_prefix

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def shared(self) -> bool:
        return False

    @property
    def up(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def healthy(self) -> bool:
        return True

    async def run(self, operation: str, remote: Callable[[Any], Awaitable[T]], local: Callable[[], T | Awaitable[T]],
                  timeout_ms: int | None = None) -> T:
        result = local()
        if asyncio.iscoroutine(result):
            return await result
        return result  # type: ignore[return-value]


MemoryState = StateBackend


class RedisState(StateBackend):
    """Redis shared by every replica; fails open to local state when Redis is slow or down."""

    kind = "redis"
    RECHECK_SECONDS = 1.0
    MAX_CONNECTIONS = 256
    SOCKET_TIMEOUT_FLOOR = 2.0

    def __init__(self, config: StateConfig, metrics: Metrics) -> None:
        super().__init__(config, metrics)
        import redis.asyncio as aioredis

        # a blocking pool: a burst waits for a free connection (within the call's time-out, see ``run``)
        # instead of failing at once with MaxConnectionsError (redis-py's default pool holds only 100).
        # Each call's time-out is enforced by ``run``; the socket time-outs are only a backstop, kept
        # above the event loop's own lag under a burst, which would otherwise fail healthy calls
        backstop = max(config.timeout_ms / 1000, self.SOCKET_TIMEOUT_FLOOR)
        pool = aioredis.BlockingConnectionPool.from_url(
            config.url, max_connections=self.MAX_CONNECTIONS, timeout=None, socket_timeout=backstop,
            socket_connect_timeout=backstop, retry_on_timeout=False, health_check_interval=0, decode_responses=False)
        self.redis = aioredis.Redis.from_pool(pool)
        self._up = True
        self._down_since: float | None = None
        self._probe: asyncio.Task | None = None
        self.on_recover: list[Callable[[], Awaitable[None]]] = []

    @property
    def shared(self) -> bool:
        return True

    @property
    def up(self) -> bool:
        return self._up

    async def start(self) -> None:
        if not await self.healthy():
            self._mark_down(ConnectionError("Redis did not answer PING at start-up"))
        else:
            self.metrics.redis_up.set(1)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.redis.aclose()

    async def healthy(self) -> bool:
        try:
            await asyncio.wait_for(self.redis.ping(), timeout=max(0.2, self.config.timeout_ms / 1000))
            return True
        except Exception:
            return False

    async def run(self, operation: str, remote: Callable[[Any], Awaitable[T]], local: Callable[[], T | Awaitable[T]],
                  timeout_ms: int | None = None) -> T:
        """``timeout_ms`` overrides ``state.timeout_ms`` for this call (rate limits wait longer: see
        ``gateway.governance.limiter``)."""
        if self._up:
            try:
                return await asyncio.wait_for(remote(self.redis), timeout=(timeout_ms or self.config.timeout_ms) / 1000)
            except Exception as exc:  # redis errors, time-outs, connection resets: fail open
                self._mark_down(exc)
        self.metrics.state_fail_open.labels(operation).inc()
        result = local()
        if asyncio.iscoroutine(result):
            return await result
        return result  # type: ignore[return-value]

    def _mark_down(self, exc: BaseException) -> None:
        if self._up:
            log.error("Redis state backend unavailable: serving from local state until it returns",
                      extra={"error": type(exc).__name__})
        self._up = False
        self._down_since = self._down_since or time.monotonic()
        self.metrics.redis_up.set(0)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._wait_for_recovery())

    async def _wait_for_recovery(self) -> None:
        while not self._up:
            await asyncio.sleep(self.RECHECK_SECONDS)
            if await self.healthy():
                self._up = True
                self._down_since = None
                self.metrics.redis_up.set(1)
                log.warning("Redis state backend is back: shared state resumes")
                for callback in self.on_recover:
                    try:
                        await callback()
                    except Exception:
                        log.exception("resynchronisation after Redis recovery failed")


def build_state(config: StateConfig, metrics: Metrics) -> StateBackend:
    if config.backend == "redis":
        return RedisState(config, metrics)
    return StateBackend(config, metrics)
