"""End to end: routing and resilience through the real gateway process.

A fallback chain across three fake upstreams with injected failures (500, 429 with Retry-After, a
hang past the timeout, connection refused) answers every request; weighted balancing over 2,000
requests; the 503 when nothing is healthy; the admin API (deployments, forced circuits, providers,
reload by API and by SIGHUP); metrics.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import openai
import pytest
import yaml

from tests.conftest import MASTER_KEY
from tests.fakes.openai import UPSTREAM_KEY, FakeOpenAI
from tests.fakes.server import free_port, serve_fake
from tests.harness import run_gateway

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


@contextlib.contextmanager
def fakes(n: int) -> Iterator[list[FakeOpenAI]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(serve_fake(FakeOpenAI())) for _ in range(n)]


def provider(url: str, read: float = 10) -> dict:
    return {"type": "openai", "api_base": f"{url}/v1", "api_key": UPSTREAM_KEY,
            "timeout": {"connect": 1, "read": read, "total": 30}}


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def admin(gw, method: str, path: str, body=None) -> httpx.Response:
    return httpx.request(method, gw.url + path, json=body, headers=AUTH, timeout=10)


def chat_calls(fake: FakeOpenAI) -> int:
    return sum(1 for r in fake.received if r.path == "/v1/chat/completions")


def test_a_fallback_chain_answers_every_request_through_injected_failures():
    with fakes(3) as (u1, u2, u3):
        config = {
            "server": {"master_key": MASTER_KEY},
            "providers": {"up1": provider(u1.url), "up2": provider(u2.url), "up3": provider(u3.url),
                          "dead": provider(f"http://127.0.0.1:{free_port()}")},  # connection refused
            "models": {
                "chat": {"retries": 1, "timeout": 5, "fallbacks": ["chat-b"], "strategy": "round_robin",
                         "deployments": [{"id": "up1", "provider": "up1", "model": "gpt-4o-mini"},
                                         {"id": "dead", "provider": "dead", "model": "gpt-4o-mini"}]},
                "chat-b": {"retries": 0, "timeout": 1, "fallbacks": ["chat-c"],
                           "deployments": [{"id": "up3", "provider": "up3", "model": "gpt-4o-mini"}]},
                "chat-c": {"retries": 2, "timeout": 10, "max_retry_wait": 2,
                           "deployments": [{"id": "up2", "provider": "up2", "model": "gpt-4o-mini"}]},
            },
        }
        u1.fail(500, "upstream exploded", times=100)
        for _ in range(3):
            u3.push(stall=1.5)  # a hang past chat-b's 1 s timeout
        u2.fail(429, "slow down", code="rate_limit_exceeded", headers={"retry-after": "1"}, times=2)
        with run_gateway(config) as gw:
            c = client(gw)
            started = time.monotonic()
            answers = []
            for i in range(8):
                if i % 2:
                    text = "".join(chunk.choices[0].delta.content or "" for chunk in
                                   c.chat.completions.create(**CHAT, stream=True) if chunk.choices)
                else:
                    text = c.chat.completions.create(**CHAT).choices[0].message.content
                answers.append(text)
            assert answers == ["echo: hello"] * 8
            assert time.monotonic() - started < 20
            assert chat_calls(u1) >= 1 and chat_calls(u3) == 8 and chat_calls(u2) == 2 + 3
            metrics = httpx.get(gw.url + "/metrics").text
            for line in ('switchyard_attempts_total{deployment="dead",outcome="connect_error"}',
                         'switchyard_attempts_total{deployment="up1",outcome="upstream_error"}',
                         'switchyard_attempts_total{deployment="up3",outcome="timeout"}',
                         'switchyard_attempts_total{deployment="up2",outcome="rate_limit_exceeded"} 2.0',
                         'switchyard_fallbacks_total{reason="timeout"} 3.0'):
                assert line in metrics, line
            # up1's 500s opened its circuit: it is skipped, while the dead one is skipped locally
            deployments = {d["id"]: d for d in admin(gw, "GET", "/admin/deployments").json()["data"]}
            assert deployments["up1"]["circuit"] == "open"
            assert 'switchyard_circuit_state{deployment="up1"} 2.0' in metrics


def test_a_retry_after_beyond_max_retry_wait_is_answered_at_once():
    with fakes(1) as (u1,):
        config = {"server": {"master_key": MASTER_KEY}, "providers": {"up1": provider(u1.url)},
                  "models": {"chat": {"retries": 3, "max_retry_wait": 2,
                                      "deployments": [{"provider": "up1", "model": "gpt-4o-mini"}]}}}
        with run_gateway(config) as gw:
            u1.fail(429, "quota", code="rate_limit_exceeded", headers={"retry-after": "30"})
            started = time.monotonic()
            with pytest.raises(openai.RateLimitError) as err:
                client(gw).chat.completions.create(**CHAT)
            assert time.monotonic() - started < 1.5 and chat_calls(u1) == 1
            assert err.value.response.headers["retry-after"] == "30"


def test_nothing_healthy_is_503_at_once_with_retry_after():
    with fakes(1) as (u1,):
        config = {"server": {"master_key": MASTER_KEY}, "providers": {"up1": provider(u1.url)},
                  "circuit_breaker": {"failure_threshold": 2, "cooldown_seconds": 20},
                  "models": {"chat": {"retries": 0, "deployments": [{"id": "d", "provider": "up1",
                                                                     "model": "gpt-4o-mini"}]}}}
        with run_gateway(config) as gw:
            u1.fail(503, "overloaded", times=2)
            for _ in range(2):
                with pytest.raises(openai.InternalServerError):
                    client(gw).chat.completions.create(**CHAT)
            started = time.monotonic()
            response = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=AUTH, timeout=10)
            assert time.monotonic() - started < 0.5
            assert response.status_code == 503 and response.json()["error"]["code"] == "no_healthy_deployment"
            assert 15 <= int(response.headers["retry-after"]) <= 20
            assert chat_calls(u1) == 2


def test_weighted_balancing_over_2000_requests():
    config = {"server": {"master_key": MASTER_KEY},
              "providers": {"m1": {"type": "mock"}, "m2": {"type": "mock"}, "m3": {"type": "mock"}},
              "models": {"chat": {"strategy": "weighted", "deployments": [
                  {"id": "heavy", "provider": "m1", "model": "x", "weight": 5},
                  {"id": "medium", "provider": "m2", "model": "x", "weight": 3},
                  {"id": "light", "provider": "m3", "model": "x", "weight": 2}]}}}
    with run_gateway(config) as gw:
        counts: Counter = Counter()
        with httpx.Client(base_url=gw.url, headers=AUTH, timeout=10) as http:
            for _ in range(2000):
                response = http.post("/v1/chat/completions", json=CHAT)
                assert response.status_code == 200
                counts[response.headers["x-switchyard-deployment"]] += 1
        for name, weight in (("heavy", 5), ("medium", 3), ("light", 2)):
            assert abs(counts[name] / 2000 - weight / 10) < 0.05, counts


def test_admin_deployments_providers_and_forced_circuits():
    with fakes(2) as (u1, u2):
        config = {"server": {"master_key": MASTER_KEY},
                  "providers": {"p1": provider(u1.url), "p2": provider(u2.url)},
                  "models": {"chat": {"strategy": "round_robin", "deployments": [
                      {"id": "one", "provider": "p1", "model": "gpt-4o-mini", "max_concurrent": 10},
                      {"id": "two", "provider": "p2", "model": "gpt-4o-mini"}]}}}
        with run_gateway(config) as gw:
            c = client(gw)
            for _ in range(4):
                c.chat.completions.create(**CHAT)
            listing = admin(gw, "GET", "/admin/deployments").json()
            assert listing["object"] == "list"
            one = next(d for d in listing["data"] if d["id"] == "one")
            for key, value in (("model_group", "chat"), ("provider", "p1"), ("model", "gpt-4o-mini"),
                               ("circuit", "closed"), ("in_flight", 0), ("error_rate", 0.0)):
                assert one[key] == value, key
            assert one["latency_ms"] > 0
            forced = admin(gw, "POST", "/admin/deployments/one/circuit", {"state": "open"})
            assert forced.status_code == 200 and forced.json()["circuit"] == "open"
            before = chat_calls(u1)
            for _ in range(6):
                assert c.chat.completions.create(**CHAT).choices
            assert chat_calls(u1) == before
            providers = admin(gw, "GET", "/admin/providers").json()
            p1 = next(p for p in providers["data"] if p["id"] == "p1")
            assert p1["status"] == "down" and p1["deployments"][0]["circuit"] == "open"
            assert admin(gw, "POST", "/admin/deployments/one/circuit", {"state": "auto"}).json()["circuit"] == "closed"
            for _ in range(4):
                c.chat.completions.create(**CHAT)
            assert chat_calls(u1) > before
            bad = admin(gw, "POST", "/admin/deployments/one/circuit", {"state": "half"})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "state"
            assert admin(gw, "POST", "/admin/deployments/nope/circuit", {"state": "open"}).status_code == 404
            assert admin(gw, "GET", "/admin/deployments/two").json()["provider"] == "p2"
            no_key = httpx.get(gw.url + "/admin/deployments", timeout=10)
            assert no_key.status_code == 401


def _write(gw, config: dict) -> None:
    data = dict(config)
    data["server"] = {**config["server"], "host": "127.0.0.1", "port": gw.port}
    gw.config_path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_reload_by_api_and_sighup_swaps_the_table_atomically():
    with fakes(2) as (u1, u2):
        config = {"server": {"master_key": MASTER_KEY},
                  "providers": {"p1": provider(u1.url)},
                  "circuit_breaker": {"failure_threshold": 2, "cooldown_seconds": 60},
                  "models": {"chat": {"retries": 0, "deployments": [{"id": "one", "provider": "p1",
                                                                     "model": "gpt-4o-mini"}]}}}
        with run_gateway(config) as gw:
            c = client(gw)
            u1.fail(500, times=2)
            for _ in range(2):
                with pytest.raises(openai.InternalServerError):
                    c.chat.completions.create(**CHAT)
            # a stream in flight on the old table
            u1.push(chunk_delay=0.3)
            stream = httpx.stream("POST", gw.url + "/v1/chat/completions", headers=AUTH, timeout=20,
                                  json={**CHAT, "model": "chat", "stream": True,
                                        "messages": [{"role": "user", "content": "one two three four"}]})
            # the stream cannot start: the circuit is open; force it closed to let this one stream through
            admin(gw, "POST", "/admin/deployments/one/circuit", {"state": "closed"})
            with stream as response:
                lines = response.iter_lines()
                first = next(line for line in lines if line)
                new = {**config, "providers": {"p1": provider(u1.url), "p2": provider(u2.url)},
                       "models": {**config["models"], "chat-2": {"deployments": [{"id": "two", "provider": "p2",
                                                                                  "model": "gpt-4o-mini"}]}}}
                _write(gw, new)
                reloaded = admin(gw, "POST", "/admin/reload")
                assert reloaded.status_code == 200 and reloaded.json()["models"] == 2
                rest = [line for line in lines if line]
            assert first.startswith("data: ") and rest[-1] == "data: [DONE]"
            assert c.chat.completions.create(**{**CHAT, "model": "chat-2"}).choices[0].message.content == "echo: hello"
            # breaker state survived the reload (forced closed, underlying open)
            admin(gw, "POST", "/admin/deployments/one/circuit", {"state": "auto"})
            assert admin(gw, "GET", "/admin/deployments/one").json()["circuit"] == "open"

            # an invalid file: 400 invalid_config with its errors, and the old table stays
            gw.config_path.write_text("server: {master_key: x}\nmodels: {chat: {deployments: [{provider: nope}]}}\n")
            refused = admin(gw, "POST", "/admin/reload")
            assert refused.status_code == 400
            error = refused.json()["error"]
            assert error["code"] == "invalid_config" and any("nope" in e for e in error["errors"])
            assert c.chat.completions.create(**{**CHAT, "model": "chat-2"}).choices

            # SIGHUP: re-reads the file (invalid first: logged and kept; then valid)
            gw.signal(signal.SIGHUP)
            time.sleep(0.5)
            assert gw.alive() and "reload refused" in gw.logs()
            _write(gw, {**new, "models": {"chat-3": {"deployments": [{"provider": "p2", "model": "gpt-4o-mini"}]}}})
            gw.signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                ids = [m.id for m in c.models.list().data]
                if ids == ["chat-3"]:
                    break
                time.sleep(0.1)
            assert ids == ["chat-3"]


def test_a_stream_outlives_the_reload_grace_on_the_old_table():
    with fakes(1) as (u1,):
        config = {"server": {"master_key": MASTER_KEY, "shutdown_grace_seconds": 0.5},
                  "providers": {"p1": provider(u1.url)},
                  "models": {"chat": {"deployments": [{"id": "one", "provider": "p1", "model": "gpt-4o-mini"}]}}}
        with run_gateway(config) as gw:
            u1.push(chunk_delay=0.4)
            body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": "a b c d e f"}]}
            with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=20) as response:
                lines = response.iter_lines()
                assert next(line for line in lines if line).startswith("data: ")
                _write(gw, {**config, "models": {"chat": {"deployments": [{"id": "two", "provider": "p1",
                                                                           "model": "gpt-4o-mini"}]}}})
                assert admin(gw, "POST", "/admin/reload").status_code == 200
                rest = [line for line in lines if line]  # ~3 s more, well past the 0.5 s grace
            assert rest[-1] == "data: [DONE]" and not any('"error"' in line for line in rest)
            assert client(gw).chat.completions.create(**CHAT).choices
