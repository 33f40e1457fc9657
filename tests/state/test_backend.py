"""The state backends: memory, Redis, and failing open when Redis is slow or down.

Redis is real (tests/conftest.py); a hung Redis is a private redis-server stopped with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from collections.abc import Awaitable, Callable

import pytest
import redis
import redis.exceptions

from gateway.config import StateConfig
from gateway.metrics import Metrics
from gateway.state import MemoryState, RedisState, build_state
from gateway.state.backend import within


def test_memory_backend_always_takes_the_local_path():
    metrics = Metrics()
    state = build_state(StateConfig(), metrics)
    assert isinstance(state, MemoryState) and not state.shared and state.up

    async def go():
        async def remote(r):
            raise AssertionError("no Redis here")
        assert await state.run("op", remote, lambda: "local") == "local"
    asyncio.run(go())
    assert state.key("cb", "d1") == "switchyard:cb:d1"


def test_redis_backend_runs_remote_and_prefixes_keys(redis_url):
    metrics = Metrics()
    state = build_state(StateConfig(backend="redis", url=redis_url, key_prefix="t-state:"), metrics)
    assert isinstance(state, RedisState) and state.shared

    async def go():
        await state.start()
        try:
            key = state.key("x")
            assert key == "t-state:x"
            assert await state.run("op", lambda r: r.set(key, "1", ex=5), lambda: None) is True
            assert await state.run("op", lambda r: r.get(key), lambda: None) == b"1"
            assert await state.healthy()
        finally:
            await state.close()
    asyncio.run(go())
    assert metrics.registry.get_sample_value("switchyard_redis_up") == 1


def test_within_returns_at_the_time_out_even_from_a_call_that_swallows_its_cancellation(caplog):
    ended = []

    async def stubborn():  # what redis-py's own wait_for can do on Python 3.11 (see ``within``)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)
            ended.append("late")
        raise ValueError("a late error nobody waits for")

    async def go():
        assert await within(asyncio.sleep(0, "answer"), 0.5) == "answer"
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await within(stubborn(), 0.05)
        assert time.monotonic() - started < 0.2
        assert not ended
        await asyncio.sleep(0.4)  # the abandoned call ends on its own; its error is retrieved, not logged
        assert ended == ["late"]

        call = asyncio.ensure_future(asyncio.sleep(5))
        caller = asyncio.ensure_future(within(call, 5))
        await asyncio.sleep(0.01)
        caller.cancel()  # the caller's cancellation cancels the call
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(0)
        assert call.cancelled()
    asyncio.run(go())
    gc.collect()
    assert "never retrieved" not in caplog.text


def redis_state(url: str, timeout_ms: int) -> tuple[RedisState, Metrics]:
    metrics = Metrics()
    state = build_state(StateConfig(backend="redis", url=url, timeout_ms=timeout_ms), metrics)
    assert isinstance(state, RedisState)
    return state, metrics


def run_started(state: RedisState, body: Callable[[], Awaitable[None]]) -> None:
    """``body()`` in a fresh event loop, between the backend's ``start`` and ``close``."""
    async def go():
        await state.start()
        try:
            await body()
        finally:
            await state.close()
    asyncio.run(go())


def sample(metrics: Metrics, name: str, operation: str | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, {"operation": operation} if operation else {})


async def eventually(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return predicate()


async def timed_call(state: RedisState, remote) -> tuple[str, float]:
    started = time.monotonic()
    result = await state.run("get", remote, lambda: "local")
    return result, time.monotonic() - started


def recoveries(state: RedisState) -> list[bool]:
    """Grows by one each time the backend calls its ``on_recover`` callbacks."""
    recovered: list[bool] = []

    async def on_recover():
        recovered.append(True)
    state.on_recover.append(on_recover)
    return recovered


def get_k(r):
    return r.get("k")


def test_a_call_slower_than_timeout_ms_fails_open_alone_and_redis_stays_up(redis_url, caplog):
    state, metrics = redis_state(redis_url, timeout_ms=50)

    async def slow(r):
        await asyncio.sleep(1)

    async def body():
        result, seconds = await timed_call(state, slow)
        assert result == "local" and seconds < 0.3  # timeout_ms, plus the event loop's lag
        assert state.up  # while the confirming PING is on its way, too
        # Redis answers the PING: it stays up, and the next call goes to Redis again
        assert await eventually(lambda: "Redis answers PING" in caplog.text, 2)
        assert state.up
        assert await state.run("get", lambda r: r.ping(), lambda: "local") is True
    with caplog.at_level(logging.INFO, logger="switchyard.state"):
        run_started(state, body)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sample(metrics, "switchyard_state_fail_open_total", "get") == 1
    assert sample(metrics, "switchyard_state_slow_calls_total", "get") == 1
    assert sample(metrics, "switchyard_redis_up") == 1


def test_a_hung_redis_is_marked_down_when_the_confirming_ping_times_out(redis_server):
    state, metrics = redis_state(redis_server.url, timeout_ms=50)
    recovered = recoveries(state)

    async def body():
        with redis_server.hung():
            for _ in range(2):  # the second call is made while the PING is pending: it tries Redis too
                result, seconds = await timed_call(state, get_k)
                assert result == "local" and 0.04 < seconds < 0.3
                assert state.up
            assert await eventually(lambda: not state.up, RedisState.CONFIRM_SECONDS + 1)
            result, seconds = await timed_call(state, get_k)
            assert result == "local" and seconds < 0.04  # down: no call waits on Redis
        assert await eventually(lambda: bool(recovered), 4) and state.up
        assert await state.run("get", lambda r: r.ping(), lambda: "local") is True
    run_started(state, body)
    assert sample(metrics, "switchyard_state_slow_calls_total", "get") == 2
    assert sample(metrics, "switchyard_state_fail_open_total", "get") == 3
    assert sample(metrics, "switchyard_redis_up") == 1


def ping_calls(url: str) -> int:
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        return int(client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))


def test_a_burst_of_slow_calls_sends_one_confirming_ping(redis_server):
    """200 calls time out together: one PING confirms Redis answers, and each call kept to its time-out."""
    state, metrics = redis_state(redis_server.url, timeout_ms=50)

    async def body():
        before = ping_calls(redis_server.url)
        with redis_server.hung():  # for 0.8 s: longer than the burst, shorter than the PING's time-out
            started = time.monotonic()
            calls = await asyncio.gather(*(timed_call(state, get_k) for _ in range(200)))
            await asyncio.sleep(0.8 - (time.monotonic() - started))
        assert [result for result, _ in calls] == ["local"] * 200
        # timeout_ms plus the event loop's lag (200 connections opened at once), never the 2 s socket backstop
        assert max(seconds for _, seconds in calls) < 0.6
        assert await eventually(lambda: ping_calls(redis_server.url) - before == 1, 1)
        await asyncio.sleep(0.1)
        assert state.up and ping_calls(redis_server.url) - before == 1
    run_started(state, body)
    assert sample(metrics, "switchyard_state_slow_calls_total", "get") == 200
    assert sample(metrics, "switchyard_redis_up") == 1


@pytest.mark.parametrize("error, marks_down", [
    # a connection error: Redis is unreachable, down at once (no confirming PING first)
    (redis.exceptions.ConnectionError("Connection reset by peer"), True),
    (redis.exceptions.BusyLoadingError("LOADING"), True),
    (ConnectionRefusedError(111, "refused"), True),
    (socket.gaierror(-2, "no such name"), True),
    # anything else fails open alone while Redis answers the PING
    (redis.exceptions.ResponseError("OOM command not allowed"), False),
    (redis.exceptions.TimeoutError("Timeout reading from socket"), False),  # the socket backstop
])
def test_what_a_failed_call_says_decides_whether_redis_is_down(redis_url, error, marks_down):
    state, metrics = redis_state(redis_url, timeout_ms=50)

    async def failing(r):
        raise error

    async def body():
        assert await state.run("get", failing, lambda: "local") == "local"
        assert state.up is not marks_down
        await asyncio.sleep(0.2)  # a confirming PING is answered
        assert state.up is not marks_down
    run_started(state, body)
    assert sample(metrics, "switchyard_redis_up") == (0 if marks_down else 1)
    timed_out = isinstance(error, redis.exceptions.TimeoutError)
    assert sample(metrics, "switchyard_state_slow_calls_total", "get") == (1 if timed_out else None)


def test_redis_stopped_and_back_serves_locally_then_resynchronises(redis_server):
    """Down at start-up, back, stopped again (the call's connection error marks it down), back again."""
    redis_server.stop()
    state, metrics = redis_state(redis_server.url, timeout_ms=100)
    recovered = recoveries(state)

    async def body():
        assert not state.up
        assert sample(metrics, "switchyard_redis_up") == 0
        redis_server.start()
        assert await eventually(lambda: bool(recovered), 4) and state.up
        assert await state.run("get", lambda r: r.set("k", "1"), lambda: "local") is True

        redis_server.stop()
        assert (await timed_call(state, get_k))[0] == "local"
        assert not state.up  # at once: no confirming PING for a refused connection
        assert sample(metrics, "switchyard_redis_up") == 0
        assert (await timed_call(state, get_k))[0] == "local"
        redis_server.start()
        assert await eventually(lambda: len(recovered) == 2, 4) and state.up
        assert await state.run("get", lambda r: r.ping(), lambda: "local") is True
    run_started(state, body)
    assert sample(metrics, "switchyard_redis_up") == 1
    assert sample(metrics, "switchyard_state_fail_open_total", "get") == 2
