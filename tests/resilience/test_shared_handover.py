"""Writes Redis did not take while it stayed up (one failed call no longer marks it down) are handed over.

Redis holds writes for real here (``CLIENT PAUSE WRITE``, Redis 6.2+): reads and PING still answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import redis

from gateway.config import parse_config
from tests.resilience.test_shared import fail, prefix, replicas, wait_for


def config(url: str):
    """Two deployments; a circuit stays open for the whole test once opened."""
    return parse_config({
        "state": {"backend": "redis", "url": url, "key_prefix": prefix(), "timeout_ms": 500},
        "providers": {"a": {"type": "mock"}},
        "circuit_breaker": {"failure_threshold": 3, "cooldown_seconds": 30, "window_seconds": 10},
        "models": {"chat": {"deployments": [{"id": "d1", "provider": "a", "model": "m"},
                                            {"id": "d2", "provider": "a", "model": "m"}]}},
    })


@contextlib.contextmanager
def holding_writes(client: redis.Redis) -> Iterator[None]:
    """Redis answers reads and PING but holds every write and script (``CLIENT PAUSE WRITE``)."""
    client.client_pause(30_000, all=False)
    try:
        yield
    finally:
        client.client_unpause()


def test_a_forced_state_redis_did_not_take_is_handed_over_once_it_does(redis_server):
    cfg = config(redis_server.url)
    d1 = cfg.models["chat"].deployments[0]

    async def go():
        async with replicas(cfg) as (a, b):
            with redis.Redis.from_url(redis_server.url, socket_timeout=5) as client, holding_writes(client):
                await a.force(d1.id, "open")  # the write times out; Redis answers the PING: it stays up
                assert a.state(d1) == "open"  # on this replica at once
                assert a.backend.up and a.shared.active and b.state(d1) == "closed"
            await wait_for(lambda: not a._pending_force and not a.forced, 1.5)  # a later refresh hands it over
            await wait_for(lambda: a.state(d1) == "open" and b.state(d1) == "open", 1.0)  # the fleet's, now
    asyncio.run(go())


def test_a_circuit_opened_during_an_outage_waits_until_redis_takes_it(redis_server):
    cfg = config(redis_server.url)
    d2 = cfg.models["chat"].deployments[1]

    async def go():
        async with replicas(cfg) as (a, b):
            with redis.Redis.from_url(redis_server.url, socket_timeout=5) as client:
                client.ping()
                with redis_server.hung():  # the replicas' PINGs time out: Redis is down
                    await wait_for(lambda: not a.backend.up and not b.backend.up, 3.0)
                    await fail(b, d2, 3)  # judged locally: open on b only
                    assert b.state(d2) == "open"
                # back, but holding the hand-over (paused before the event loop runs again): b stays local
                with holding_writes(client):
                    await wait_for(lambda: b.backend.up, 3.0)
                    await asyncio.sleep(1.5)  # the hand-over's time-out, and its PING answered
                    assert b.backend.up and not b.shared.active
                    assert b.state(d2) == "open" and a.state(d2) == "closed"
            await wait_for(lambda: b.shared.active, 2.0)
            await wait_for(lambda: a.state(d2) == "open", 1.0)  # handed to the fleet, not lost
    asyncio.run(go())
