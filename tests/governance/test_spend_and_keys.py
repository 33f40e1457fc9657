"""The spend ledger and created keys, in memory and on a real Redis shared by two 'replicas'."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
import redis.asyncio as aioredis

from gateway.config import StateConfig
from gateway.errors import Conflict, NotFound
from gateway.governance.bus import Bus
from gateway.governance.config import KeySpec, sha256_hex
from gateway.governance.keys import KeyStore
from gateway.governance.spend import SpendLedger
from gateway.governance.sync import CreatedKeys, rotated
from gateway.metrics import Metrics
from gateway.state import RedisState, StateBackend

DAY = dt.date(2025, 3, 1)


def memory_state() -> StateBackend:
    return StateBackend(StateConfig(), Metrics())


async def redis_replica(url: str, prefix: str):
    state = RedisState(StateConfig(backend="redis", url=url, key_prefix=prefix, timeout_ms=2000), Metrics())
    await state.start()
    client = aioredis.Redis.from_url(url)
    return state, client


def test_memory_ledger_reports_by_each_group():
    async def main():
        ledger = SpendLedger(memory_state())
        ledger.add("2025-03-01", ("k1", "payments", "gpt-4o", "openai"), 1_500, 10, 5)
        ledger.add("2025-03-01", ("k2", "payments", "claude", "anthropic"), 2_000, 1, 1)
        ledger.add("2025-03-02", ("k1", "payments", "gpt-4o", "openai"), 1, 1, 0)
        ledger.add("2025-03-03", ("k1", "", "gpt-4o", "openai"), 7, 1, 0)  # outside the range
        by_key = await ledger.report("key", DAY, DAY + dt.timedelta(days=1))
        by_team = await ledger.report("team", DAY, DAY + dt.timedelta(days=2))
        return by_key, by_team

    by_key, by_team = asyncio.run(main())
    assert by_key["data"] == [
        {"key": "k2", "spend_usd": 2e-6, "requests": 1, "prompt_tokens": 1, "completion_tokens": 1, "spend_nano_usd": 2000},
        {"key": "k1", "spend_usd": 1.501e-6, "requests": 2, "prompt_tokens": 11, "completion_tokens": 5,
         "spend_nano_usd": 1501}]
    assert by_key["total_nano_usd"] == 3501 and by_key["from"] == "2025-03-01" and by_key["to"] == "2025-03-02"
    assert [row["team"] for row in by_team["data"]] == ["payments", None]


def test_redis_ledgers_of_two_replicas_add_up_and_a_retried_batch_counts_once(redis_url):
    async def main():
        prefix = f"t{uuid.uuid4().hex[:8]}:"
        (state_a, client_a), (state_b, client_b) = [await redis_replica(redis_url, prefix) for _ in range(2)]
        bus_a, bus_b = Bus(state_a, client_a), Bus(state_b, client_b)
        a, b = SpendLedger(state_a, client_a, bus_a), SpendLedger(state_b, client_b, bus_b)
        await bus_a.start()
        await bus_b.start()
        for i in range(50):
            (a if i % 2 else b).add("2025-03-01", ("k", "t", "m", "p"), 3, 2, 1)
        batch = {"2025-03-01": {("k", "t", "m", "p"): [100, 1, 0, 0]}}
        await b._write("batch-1", batch)
        await b._write("batch-1", batch)  # the answer was lost and the flush retried: applied once
        report = await a.report("model", DAY, DAY)  # b flushes its pending batch when a asks over the bus
        await bus_a.close()
        await bus_b.close()
        for state, client in ((state_a, client_a), (state_b, client_b)):
            await client.aclose()
            await state.close()
        return report

    report = asyncio.run(main())
    assert report["data"] == [{"model": "m", "spend_usd": 2.5e-7, "requests": 51, "prompt_tokens": 100,
                               "completion_tokens": 50, "spend_nano_usd": 250}]


def spec(name: str, secret: str, **kw) -> KeySpec:
    return KeySpec(name=name, key_sha256=sha256_hex(secret), source="admin", **kw)


def test_key_store_globs_and_lookup():
    async def main():
        store = KeyStore()
        store.configure([KeySpec(name="a", key_sha256=sha256_hex("sk-aaaaaaaa"), models=("gpt-4o*", "claude-*"))])
        identity = await store.lookup(sha256_hex("sk-aaaaaaaa"))
        return store, identity, await store.lookup(sha256_hex("sk-nope"))

    _, identity, missing = asyncio.run(main())
    assert identity.kind == "virtual" and identity.name == "a" and missing is None
    key = identity.policy
    assert key.may_use("gpt-4o") and key.may_use("gpt-4o-mini") and key.may_use("claude-sonnet-4-5")
    assert not key.may_use("gpt-4.1") and not key.may_use("my-gpt-4o")


def test_created_keys_in_memory():
    async def main():
        store = KeyStore()
        keys = CreatedKeys(memory_state(), store)
        await keys.create(spec("n", "sk-secret-1"))
        with pytest.raises(Conflict):
            await keys.create(spec("n", "sk-secret-2"))
        assert (await store.lookup(sha256_hex("sk-secret-1"))).name == "n"
        await keys.replace("n", lambda s: rotated(s, sha256_hex("sk-secret-3")))
        assert await store.lookup(sha256_hex("sk-secret-1")) is None
        assert (await store.lookup(sha256_hex("sk-secret-3"))).name == "n"
        await keys.delete("n")
        assert await store.lookup(sha256_hex("sk-secret-3")) is None
        with pytest.raises(NotFound):
            await keys.delete("n")

    asyncio.run(main())


async def key_replica(url: str, prefix: str):
    state, client = await redis_replica(url, prefix)
    store, bus = KeyStore(), Bus(state, client)
    keys = CreatedKeys(state, store, client, bus)
    await bus.start()
    return state, client, bus, store, keys


def test_created_keys_reach_every_replica_before_the_admin_call_returns(redis_url):
    async def main():
        prefix = f"t{uuid.uuid4().hex[:8]}:"
        replicas = [await key_replica(redis_url, prefix) for _ in range(3)]
        stores = [r[3] for r in replicas]
        a, c = replicas[0][4], replicas[2][4]
        for i in range(5):  # repeated, to catch a race: no sleeping between the call and the check
            digest = sha256_hex(f"sk-created-{i}")
            assert await a.create(spec(f"k{i}", f"sk-created-{i}")) == 3
            assert [await s.lookup(digest) is not None for s in stores] == [True] * 3
            assert await c.delete(f"k{i}") == 3
            assert [await s.lookup(digest) for s in stores] == [None] * 3
        await a.create(spec("late", "sk-late-key-1"))
        replicas.append(await key_replica(redis_url, prefix))  # a replica that starts later loads the keys
        found = await replicas[-1][3].lookup(sha256_hex("sk-late-key-1"))
        for state, client, bus, _, _ in replicas:
            await bus.close()
            await client.aclose()
            await state.close()
        return found

    found = asyncio.run(main())
    assert found is not None and found.name == "late"
