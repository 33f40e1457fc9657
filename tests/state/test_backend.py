"""The state backends: memory, Redis, and failing open when Redis is slow or down."""

from __future__ import annotations

import asyncio
import time

from gateway.config import StateConfig
from gateway.metrics import Metrics
from gateway.state import MemoryState, RedisState, build_state


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


def test_a_slow_redis_costs_at_most_timeout_ms_then_fails_open(redis_url):
    metrics = Metrics()
    state = build_state(StateConfig(backend="redis", url=redis_url, timeout_ms=50), metrics)

    async def go():
        await state.start()
        try:
            async def slow(r):
                await asyncio.sleep(1)
            started = time.monotonic()
            assert await state.run("slow_op", slow, lambda: "local") == "local"
            assert time.monotonic() - started < 0.3
            assert not state.up
            # while down, no remote call is even tried
            started = time.monotonic()
            assert await state.run("slow_op", slow, lambda: "local") == "local"
            assert time.monotonic() - started < 0.05
            await asyncio.sleep(1.3)  # the recovery check finds Redis answering again
            assert state.up
        finally:
            await state.close()
    asyncio.run(go())
    assert metrics.registry.get_sample_value("switchyard_state_fail_open_total", {"operation": "slow_op"}) == 2


def test_redis_down_at_start_and_back_calls_on_recover(redis_server):
    metrics = Metrics()
    redis_server.stop()
    state = build_state(StateConfig(backend="redis", url=redis_server.url, timeout_ms=100), metrics)
    recovered = []

    async def go():
        await state.start()
        try:
            assert not state.up
            assert metrics.registry.get_sample_value("switchyard_redis_up") == 0

            async def on_recover():
                recovered.append(True)
            state.on_recover.append(on_recover)
            redis_server.start()
            deadline = time.monotonic() + 4
            while not recovered and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert recovered and state.up
        finally:
            await state.close()
    asyncio.run(go())
    assert metrics.registry.get_sample_value("switchyard_redis_up") == 1
