"""The state backends. See ``gateway.state`` for the contract."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
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
    """Redis shared by every replica; fails open to local state when Redis is slow or down.

    A call that fails or exceeds its time-out is served from local state, alone. Whether Redis is
    *down* for the replica (every call local until the recovery check's PING answers) is decided by
    what the failure says: a connection error (refused, reset, DNS) marks it down at once; anything
    else, a time-out above all (under a burst the event loop's own lag can exceed a short time-out
    while Redis is healthy), starts a confirming PING with a generous time-out, at most one at a
    time, and only a PING that fails marks Redis down. Calls keep going to Redis meanwhile.
    """

    kind = "redis"
    RECHECK_SECONDS = 1.0
    CONFIRM_SECONDS = 1.0  # the confirming PING's time-out (at least state.timeout_ms)
    WARN_EVERY_SECONDS = 10.0  # a Redis slow but answering is logged at most this often
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
        self._confirm: asyncio.Task | None = None
        self._warned_at = float("-inf")
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
        for task in (self._probe, self._confirm):
            if task is not None:
                task.cancel()
        await self.redis.aclose()

    async def healthy(self) -> bool:
        try:
            await within(self.redis.ping(), max(0.2, self.config.timeout_ms / 1000))
            return True
        except Exception:
            return False

    async def run(self, operation: str, remote: Callable[[Any], Awaitable[T]], local: Callable[[], T | Awaitable[T]],
                  timeout_ms: int | None = None) -> T:
        """``timeout_ms`` overrides ``state.timeout_ms`` for this call (rate limits wait longer: see
        ``gateway.governance.limiter``)."""
        if self._up:
            try:
                return await within(remote(self.redis), (timeout_ms or self.config.timeout_ms) / 1000)
            except Exception as exc:  # redis errors, time-outs, connection resets: fail open
                self._failed(operation, exc)
        self.metrics.state_fail_open.labels(operation).inc()
        result = local()
        if asyncio.iscoroutine(result):
            return await result
        return result  # type: ignore[return-value]

    def _failed(self, operation: str, exc: Exception) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        timed_out = isinstance(exc, (TimeoutError, RedisTimeoutError))  # within's, or the socket backstop's
        if not timed_out and isinstance(exc, (RedisConnectionError, OSError)):  # refused, reset, DNS: unreachable
            self._mark_down(exc)
            return
        if timed_out:
            self.metrics.state_slow_calls.labels(operation).inc()
        if self._confirm is None or self._confirm.done():
            self._confirm = asyncio.ensure_future(self._confirm_reachable(operation, exc))

    async def _confirm_reachable(self, operation: str, exc: Exception) -> None:
        """Redis stays up when it answers a PING within ``CONFIRM_SECONDS``; else it is down."""
        try:
            await within(self.redis.ping(), max(self.CONFIRM_SECONDS, self.config.timeout_ms / 1000))
        except Exception as ping_exc:
            self._mark_down(ping_exc)
            return
        now = time.monotonic()
        if self._up and now - self._warned_at >= self.WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("a Redis call failed or exceeded its time-out and used local state; Redis answers PING, "
                        "so state stays shared", extra={"operation": operation, "error": type(exc).__name__})

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


async def within(call: Awaitable[T], seconds: float) -> T:
    """``call``'s result, or ``TimeoutError`` after ``seconds``, never later.

    Unlike ``asyncio.wait_for``, this does not wait for the cancelled call to end: on Python 3.11 a
    cancellation that arrives just as redis-py's own ``wait_for`` (around each socket write) completes
    is swallowed, and the call then holds its caller until the socket time-out (seconds). As cheap as
    ``wait_for``: one task, one future, one timer."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(call)
    waiter = loop.create_future()
    timer = loop.call_later(seconds, _release, waiter)
    release = partial(_release, waiter)
    task.add_done_callback(release)
    try:
        await waiter
    finally:
        timer.cancel()
        if not task.done():  # timed out, or our caller was cancelled: cancel the call, do not wait for it
            task.remove_done_callback(release)
            task.cancel()
            task.add_done_callback(_forget)
    if not task.done():
        raise TimeoutError(f"no answer within {seconds:g} s")
    return task.result()


def _release(waiter: asyncio.Future, *_: Any) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _forget(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a late error of an abandoned call is not "never retrieved"


def build_state(config: StateConfig, metrics: Metrics) -> StateBackend:
    if config.backend == "redis":
        return RedisState(config, metrics)
    return StateBackend(config, metrics)
