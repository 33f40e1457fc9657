"""Governance across replicas: two gateway processes sharing a real Redis.

Exact rpm and tpm under concurrency, budgets, created keys that work and stop working on both at
once, spend that equals the audited costs, one audit record per request, and failing open when Redis
goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, openai_config
from tests.e2e.support import admin, post
from tests.fakes.openai import UPSTREAM_KEY, FakeOpenAI
from tests.fakes.server import served_fixture
from tests.harness import run_gateway

RPM_KEY = "sk-cluster-rpm-key-000001"
TPM_KEY = "sk-cluster-tpm-key-000002"
BUDGET_KEY = "sk-cluster-budget-key-003"
PRICE = {"input": 800, "output": 800}  # "hello world" costs 5 tokens * $0.0008 = $0.004


def cluster_config(upstream_url: str, redis_url: str, audit_path: str, **state) -> dict:
    cfg = openai_config(upstream_url)
    cfg["models"]["gpt-4o-mini"]["deployments"][0]["price"] = PRICE
    cfg["state"] = {"backend": "redis", "url": redis_url, "key_prefix": f"sy-{uuid.uuid4().hex[:8]}:", **state}
    cfg["keys"] = [
        {"name": "rpm-svc", "key": RPM_KEY, "rpm": 50},
        {"name": "tpm-svc", "key": TPM_KEY, "tpm": 400},
        {"name": "budget-svc", "key": BUDGET_KEY, "budget": {"usd": 0.01, "period": "day"}},
    ]
    cfg["audit"] = {"sinks": [{"type": "file", "path": audit_path}]}
    return cfg


upstream = served_fixture(FakeOpenAI)


@contextlib.contextmanager
def two_gateways(cfg: dict):
    with run_gateway(cfg) as a, run_gateway(cfg) as b:
        yield a, b


@pytest.fixture(scope="module")
def cluster(upstream, redis_url, tmp_path_factory):
    audit_path = str(tmp_path_factory.mktemp("audit") / "audit.jsonl")
    with two_gateways(cluster_config(upstream.url, redis_url, audit_path, timeout_ms=1000)) as pair:
        yield pair + (audit_path,)


def chat(text: str = "hello world", **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def burst(urls: list[str], key: str, count: int, body: dict) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        return await asyncio.gather(*(
            http.post(urls[i % len(urls)] + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {key}"}) for i in range(count)))


def audit_records(path: str, expected: int = 0, timeout: float = 10) -> list[dict]:
    """The audit file's records, waiting (up to ``timeout``) until there are at least ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        records = []
        if Path(path).exists():
            records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        if len(records) >= expected or time.monotonic() >= deadline:
            return records
        time.sleep(0.05)


def test_rpm_is_exact_across_two_replicas(cluster):
    a, b, _ = cluster
    responses = asyncio.run(burst([a.url, b.url], RPM_KEY, 200, chat()))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50 and statuses.count(429) == 150
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) > 0
               for r in refused)
    assert all(r.headers["x-ratelimit-limit-requests"] == "50" for r in responses)
    for gateway in (a, b):
        metrics = httpx.get(gateway.url + "/metrics").text
        assert 'switchyard_state_fail_open_total{operation="ratelimit"}' not in metrics  # Redis answered every time
        assert 'switchyard_ratelimited_total{scope="key"}' in metrics


def test_tpm_never_admits_more_tokens_than_the_limit(cluster, upstream):
    a, b, _ = cluster
    responses = asyncio.run(burst([a.url, b.url], TPM_KEY, 60, chat(max_tokens=10)))
    ok = [r for r in responses if r.status_code == 200]
    used = sum(r.json()["usage"]["total_tokens"] for r in ok)
    assert ok and used <= 400
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in responses if r.status_code != 200)
    # each reservation is the estimate (a few prompt tokens + max_tokens 10); after settling to the real
    # usage (5 tokens) more fit in the same window
    later = asyncio.run(burst([a.url, b.url], TPM_KEY, 20, chat(max_tokens=10)))
    used += sum(r.json()["usage"]["total_tokens"] for r in later if r.status_code == 200)
    assert used <= 400
    assert "x-ratelimit-remaining-tokens" in responses[0].headers


def test_budget_across_replicas_is_crossed_by_the_right_request(cluster):
    a, b, _ = cluster
    statuses = []
    for i in range(5):
        gateway = (a, b)[i % 2]
        response = httpx.post(gateway.url + "/v1/chat/completions", json=chat(),
                              headers={"authorization": f"Bearer {BUDGET_KEY}"}, timeout=20)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "budget_exceeded"
            assert response.headers["x-should-retry"] == "false"
    assert statuses == [200, 200, 200, 429, 429]  # 0 -> .004 -> .008 -> .012 (crossed by the third)


def test_created_key_works_at_once_on_both_and_stops_on_both_when_deleted(cluster):
    a, b, _ = cluster
    for round_ in range(3):
        created = admin(a, "POST", "/admin/keys", json={"name": f"live-{round_}"})
        assert created.status_code == 200 and created.json()["replicas_acknowledged"] >= 2
        key = created.json()["key"]
        headers = {"authorization": f"Bearer {key}"}
        for gateway in (b, a):  # immediately, no waiting
            assert httpx.post(gateway.url + "/v1/chat/completions", json=chat(), headers=headers).status_code == 200
        listed = {k["name"] for k in admin(b, "GET", "/admin/keys").json()["data"]}
        assert f"live-{round_}" in listed
        assert admin(b, "DELETE", f"/admin/keys/live-{round_}").status_code == 200
        for gateway in (a, b):
            assert httpx.post(gateway.url + "/v1/chat/completions", json=chat(), headers=headers).status_code == 401


def test_spend_equals_audited_costs_and_every_request_is_audited(cluster):
    a, b, audit_path = cluster
    key = admin(a, "POST", "/admin/keys", json={"name": "spend-svc"}).json()["key"]
    responses = asyncio.run(burst([a.url, b.url], key, 40, chat()))
    assert all(r.status_code == 200 for r in responses)
    ids = {r.headers["x-request-id"] for r in responses}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mine = [r for r in audit_records(audit_path, 0, timeout=0) if r["request_id"] in ids]
        if len(mine) >= 40:
            break
        time.sleep(0.05)
    assert sorted(r["request_id"] for r in mine) == sorted(ids)  # exactly one record each
    audited = sum(r["cost_usd"] for r in mine)
    for gateway in (a, b):  # no waiting: the report has every replica flush first
        rows = {row["key"]: row for row in admin(gateway, "GET", "/admin/spend?group_by=key").json()["data"]}
        assert abs(rows["spend-svc"]["spend_usd"] - audited) < 1e-9 and rows["spend-svc"]["requests"] == 40
    # and over everything the module sent (refused and failed requests cost nothing); earlier tests'
    # last records may still be on their way to the file, so allow them a moment
    deadline = time.monotonic() + 5
    while True:
        everything = sum(r["cost_usd"] or 0 for r in audit_records(audit_path, 0, timeout=0))
        total = admin(a, "GET", "/admin/spend?group_by=provider").json()["total_usd"]
        if abs(total - everything) < 1e-9 or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    assert abs(total - everything) < 1e-9


def test_no_key_leaks_anywhere_in_the_cluster(cluster):
    a, b, audit_path = cluster
    for gateway in (a, b):  # a request through each, so there is an audit trail when this test runs alone
        post(gateway, "/v1/chat/completions", chat())
    audit_records(audit_path, 2)
    texts = [a.logs(), b.logs(), Path(audit_path).read_text()]
    for gateway in (a, b):
        texts += [httpx.get(gateway.url + "/metrics").text, admin(gateway, "GET", "/admin/keys").text,
                  admin(gateway, "GET", "/admin/audit?limit=1000").text]
    for text in texts:
        for secret in (UPSTREAM_KEY, MASTER_KEY, RPM_KEY, TPM_KEY, BUDGET_KEY):
            assert secret not in text


def test_redis_down_fails_open_per_replica_and_recovers(upstream, redis_server, tmp_path):
    cfg = cluster_config(upstream.url, redis_server.url, str(tmp_path / "audit.jsonl"), timeout_ms=200)
    cfg["keys"] = [{"name": "rpm-svc", "key": RPM_KEY, "rpm": 3}]
    with run_gateway(cfg) as gateway:
        headers = {"authorization": f"Bearer {RPM_KEY}"}
        redis_server.stop()
        statuses = [httpx.post(gateway.url + "/v1/chat/completions", json=chat(), headers=headers,
                               timeout=20).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]  # this replica enforces the limit alone
        metrics = httpx.get(gateway.url + "/metrics").text
        assert 'switchyard_state_fail_open_total{operation="ratelimit"}' in metrics
        ready = httpx.get(gateway.url + "/health/ready").json()
        assert ready["status"] == "degraded"
        redis_server.start()
        deadline = time.monotonic() + 10
        while httpx.get(gateway.url + "/health/ready").json()["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        report = admin(gateway, "GET", "/admin/spend?group_by=key").json()  # spend written once Redis is back
        assert report["data"][0]["requests"] == 3
