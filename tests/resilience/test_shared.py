"""Shared circuit breakers on a real Redis: two ``Circuits`` (two replicas' views) in one process.

The end-to-end version with two gateway processes is tests/e2e/test_replicas.py; here the timing
and each transition are checked closely.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import redis

from gateway.config import parse_config
from gateway.metrics import Metrics
from gateway.resilience.circuits import Circuits
from gateway.state import build_state


def config(url: str, prefix: str, timeout: float = 1.0):
    return parse_config({
        "state": {"backend": "redis", "url": url, "key_prefix": prefix, "timeout_ms": 500},
        "providers": {"a": {"type": "mock"}},
        "circuit_breaker": {"failure_threshold": 3, "cooldown_seconds": 1, "window_seconds": 10},
        "models": {"chat": {"timeout": timeout, "deployments": [{"id": "d1", "provider": "a", "model": "m"},
                                                                {"id": "d2", "provider": "a", "model": "m"}]}},
    })


async def replica(cfg) -> Circuits:
    metrics = Metrics()
    state = build_state(cfg.state, metrics)
    await state.start()
    circuits = Circuits(cfg, metrics, state)
    await circuits.start()
    return circuits


@contextlib.asynccontextmanager
async def replicas(cfg, count: int = 2) -> AsyncIterator[list[Circuits]]:
    """``count`` replicas' views of the same shared state (``replica``), all closed when the block ends."""
    started: list[Circuits] = []
    try:
        for _ in range(count):
            started.append(await replica(cfg))
        yield started
    finally:
        for circuits in started:
            await circuits.close()
            await circuits.backend.close()


async def wait_for(predicate, timeout: float = 2.0) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def fail(c: Circuits, d, times: int, **kw) -> None:
    for _ in range(times):
        permit = await c.acquire(d)
        assert permit is not None
        await c.report(permit, success=False, **kw)


def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


def test_failures_seen_by_one_replica_open_it_for_the_other_within_a_second(redis_url):
    cfg = config(redis_url, prefix())
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg) as (a, b):
            assert a.shared.active and b.shared.active
            await fail(a, d1, 3)
            await wait_for(lambda: a.state(d1) == "open", 0.5)
            elapsed = await wait_for(lambda: b.state(d1) == "open", 1.0)
            assert elapsed < 1.0
            assert await b.acquire(d1) is None
            assert b.describe(d1)["shared"] is True
    asyncio.run(go())


def test_failures_add_up_across_replicas(redis_url):
    cfg = config(redis_url, prefix())
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg) as (a, b):
            await fail(a, d1, 2)
            await asyncio.sleep(0.2)
            await fail(b, d1, 1)  # 3 consecutive failures across the fleet
            await wait_for(lambda: a.state(d1) == "open" and b.state(d1) == "open", 1.0)
    asyncio.run(go())


def test_after_the_cooldown_exactly_one_probe_across_replicas(redis_url):
    cfg = config(redis_url, prefix())
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg) as (a, b):
            await fail(a, d1, 3)
            await wait_for(lambda: b.state(d1) == "open", 1.0)
            await asyncio.sleep(1.05)
            await wait_for(lambda: a.state(d1) == "half_open" and b.state(d1) == "half_open", 1.0)
            permits = await asyncio.gather(*[c.acquire(d1) for c in (a, b) for _ in range(20)])
            granted = [p for p in permits if p is not None]
            assert len(granted) == 1 and granted[0].probe and granted[0].token
            owner = a if permits.index(granted[0]) < 20 else b
            other = b if owner is a else a
            await asyncio.sleep(0.3)  # refreshes come and go: still nobody else probes
            assert await other.acquire(d1) is None and await owner.acquire(d1) is None
            await owner.report(granted[0], success=True)
            assert owner.state(d1) == "closed"
            await wait_for(lambda: other.state(d1) == "closed", 1.0)
            assert await other.acquire(d1) is not None
    asyncio.run(go())


def test_a_failed_probe_opens_it_again_everywhere(redis_url):
    cfg = config(redis_url, prefix())
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg) as (a, b):
            await fail(a, d1, 3)
            await asyncio.sleep(1.05)
            probe = await b.acquire(d1)
            assert probe is not None and probe.probe
            await b.report(probe, success=False)
            assert b.state(d1) == "open"
            await asyncio.sleep(0.4)
            assert a.state(d1) == "open" and await a.acquire(d1) is None
            await asyncio.sleep(0.8)
            assert a.state(d1) == "half_open"
    asyncio.run(go())


def test_a_probe_that_never_reports_expires(redis_url):
    cfg = config(redis_url, prefix(), timeout=0.5)  # lease: timeout + 1 s
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg) as (a, b):
            await fail(a, d1, 3)
            await asyncio.sleep(1.05)
            assert (await a.acquire(d1)).probe  # and never reported: the replica "died"
            await asyncio.sleep(0.3)
            assert await b.acquire(d1) is None
            await asyncio.sleep(1.4)
            probe = await b.acquire(d1)
            assert probe is not None and probe.probe
    asyncio.run(go())


def test_connect_errors_stay_with_the_replica_that_saw_them(redis_url):
    cfg = config(redis_url, prefix())
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg) as (a, b):
            await fail(a, d1, 3, local=True)
            assert a.state(d1) == "open"
            await asyncio.sleep(0.4)
            assert b.state(d1) == "closed" and await b.acquire(d1) is not None
    asyncio.run(go())


def test_forced_state_is_shared_and_auto_lifts_it(redis_url):
    cfg = config(redis_url, prefix())
    d2 = cfg.models["chat"].deployments[1]

    async def go():
        async with replicas(cfg) as (a, b):
            await a.force("d2", "open")
            await wait_for(lambda: b.state(d2) == "open", 1.0)
            assert b.describe(d2)["forced"] == "open"
            await b.force("d2", "auto")
            await wait_for(lambda: a.state(d2) == "closed", 1.0)
    asyncio.run(go())


def test_keys_expire(redis_url):
    p = prefix()
    cfg = config(redis_url, p)
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg, 1) as (a,):
            await fail(a, d1, 1)
            permit = await a.acquire(d1)
            await a.report(permit, success=True)
            await asyncio.sleep(0.3)
    asyncio.run(go())
    client = redis.Redis.from_url(redis_url)
    try:
        ttl = client.pttl(f"{p}cb:d1")
        assert 0 < ttl <= (10 + 1 + 60 + 60) * 1000
    finally:
        client.close()


def test_redis_down_fails_open_and_resynchronises(redis_server):
    cfg = config(redis_server.url, prefix())
    d1, d2 = cfg.models["chat"].deployments

    async def go():
        async with replicas(cfg) as (a, b):
            await fail(a, d1, 3)
            await wait_for(lambda: b.state(d1) == "open", 1.0)
            redis_server.stop()
            await wait_for(lambda: not a.shared.active and not b.shared.active, 2.0)
            assert a.metrics.registry.get_sample_value("switchyard_redis_up") == 0
            # both keep answering: closed deployments pass, and an open one stays open
            for c in (a, b):
                assert (await c.acquire(d2)) is not None and c.state(d1) in ("open", "half_open")
            started = time.monotonic()
            for _ in range(50):
                permit = await a.acquire(d2)
                await a.report(permit, success=True)
            assert time.monotonic() - started < 0.5  # no Redis wait on the request path
            # judged locally meanwhile: d2 fails on b only
            await fail(b, d2, 3)
            assert b.state(d2) == "open" and a.state(d2) == "closed"
            redis_server.start()
            await wait_for(lambda: a.shared.active and b.shared.active, 4.0)
            assert a.metrics.registry.get_sample_value("switchyard_redis_up") == 1
            # b's verdict was handed over, and the shared state rules again
            await wait_for(lambda: a.state(d2) != "closed", 1.0)  # open, or half-open: the cooldown ran meanwhile
            await b.force("d2", "closed")
            await wait_for(lambda: a.state(d2) == "closed", 1.0)
    asyncio.run(go())
