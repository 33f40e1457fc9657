"""Two gateway processes (separate OS processes) sharing a real Redis.

- failures seen through replica A open the breaker, and replica B stops sending to that deployment
  within one second;
- after the cooldown exactly one probe is sent across both;
- Redis stopped mid-test: both keep answering every request (``degraded`` in /health/ready,
  ``switchyard_redis_up 0``), and pick the shared state up again when it returns.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import MASTER_KEY
from tests.fakes.openai import UPSTREAM_KEY, FakeOpenAI
from tests.fakes.server import serve_fake
from tests.harness import run_gateway

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
COOLDOWN = 2.0


def provider(url: str) -> dict:
    return {"type": "openai", "api_base": f"{url}/v1", "api_key": UPSTREAM_KEY,
            "timeout": {"connect": 1, "read": 10, "total": 30}}


def config(redis_url: str, flaky: FakeOpenAI, good: FakeOpenAI) -> dict:
    return {
        "server": {"master_key": MASTER_KEY},
        "state": {"backend": "redis", "url": redis_url, "key_prefix": f"replicas-{time.monotonic_ns()}:",
                  "timeout_ms": 250},
        "circuit_breaker": {"failure_threshold": 3, "cooldown_seconds": COOLDOWN},
        "providers": {"flaky": provider(flaky.url), "good": provider(good.url)},
        "models": {"chat": {"retries": 1, "strategy": "round_robin", "deployments": [
            {"id": "flaky", "provider": "flaky", "model": "gpt-4o-mini"},
            {"id": "good", "provider": "good", "model": "gpt-4o-mini"}]}},
    }


def calls(fake: FakeOpenAI) -> int:
    return sum(1 for r in fake.received if r.path == "/v1/chat/completions")


def ask(gw, n: int = 1) -> list[int]:
    with httpx.Client(base_url=gw.url, headers=AUTH, timeout=15) as http:
        return [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(n)]


def circuit(gw, deployment: str = "flaky") -> str:
    return httpx.get(f"{gw.url}/admin/deployments/{deployment}", headers=AUTH, timeout=5).json()["circuit"]


def wait_until(predicate, timeout: float, step: float = 0.02) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not reached within {timeout}s")
        time.sleep(step)
    return time.monotonic() - started


@contextlib.contextmanager
def upstreams():
    with serve_fake(FakeOpenAI()) as flaky, serve_fake(FakeOpenAI()) as good:
        yield flaky, good


def test_two_replicas_share_their_breakers(redis_url):
    with upstreams() as (flaky, good), contextlib.ExitStack() as stack:
        cfg = config(redis_url, flaky, good)
        a = stack.enter_context(run_gateway(cfg))
        b = stack.enter_context(run_gateway(cfg))
        assert httpx.get(a.url + "/health/ready").json() == {"status": "ok", "checks": {"config": "ok", "redis": "ok"}}

        # failures seen through A open the breaker; B stops sending to it within one second
        flaky.fail(500, "down", times=1000)
        assert set(ask(a, 8)) == {200}  # every failure was retried on the good deployment
        wait_until(lambda: circuit(a) == "open", 1.0)
        opened_at = time.monotonic()
        wait_until(lambda: circuit(b) == "open", 1.0)
        assert time.monotonic() - opened_at < 1.0
        before = calls(flaky)
        assert set(ask(b, 10)) == {200} and calls(flaky) == before

        # after the cooldown exactly one probe is sent across both (it fails: open again)
        time.sleep(COOLDOWN + 0.1)
        with ThreadPoolExecutor(8) as pool:
            statuses = [s for result in pool.map(lambda gw: ask(gw, 6), [a, b] * 4) for s in result]
        assert set(statuses) == {200} and calls(flaky) == before + 1
        wait_until(lambda: circuit(a) == "open" and circuit(b) == "open", 1.0)

        # the next probe succeeds: closed on both
        flaky.script.clear()
        time.sleep(COOLDOWN + 0.1)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda gw: ask(gw, 4), [a, b] * 2))
        assert calls(flaky) >= before + 2
        wait_until(lambda: circuit(a) == "closed" and circuit(b) == "closed", 1.0)


def test_replicas_keep_answering_without_redis_and_resynchronise(redis_server):
    with upstreams() as (flaky, good), contextlib.ExitStack() as stack:
        cfg = config(redis_server.url, flaky, good)
        a = stack.enter_context(run_gateway(cfg))
        b = stack.enter_context(run_gateway(cfg))
        assert set(ask(a, 4) + ask(b, 4)) == {200}

        redis_server.stop()
        started = time.monotonic()
        statuses = ask(a, 20) + ask(b, 20)
        assert set(statuses) == {200}
        assert time.monotonic() - started < 10
        for gw in (a, b):
            wait_until(lambda: httpx.get(gw.url + "/health/ready").json()["status"] == "degraded", 3.0)
            ready = httpx.get(gw.url + "/health/ready").json()
            assert ready["checks"]["redis"] == "down"
            assert "switchyard_redis_up 0.0" in httpx.get(gw.url + "/metrics").text
        # judged locally meanwhile: failures through A open A's breaker only
        flaky.fail(500, "down", times=1000)
        assert set(ask(a, 8)) == {200}
        assert circuit(a) == "open" and circuit(b) == "closed"
        assert a.logs().count("Redis state backend unavailable") == 1  # logged once

        redis_server.start()
        for gw in (a, b):
            wait_until(lambda: httpx.get(gw.url + "/health/ready").json()["status"] == "ok", 5.0)
            assert "switchyard_redis_up 1.0" in httpx.get(gw.url + "/metrics").text
        # A's verdict was handed over to the fleet, and the shared state rules again
        wait_until(lambda: circuit(b) != "closed", 1.0)
        before = calls(flaky)
        assert set(ask(b, 6)) == {200}
        assert calls(flaky) <= before + 1  # at most the one probe, if the cooldown ran out meanwhile
