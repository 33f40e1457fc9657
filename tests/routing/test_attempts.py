"""Retries, back-off, Retry-After, the group timeout and fallbacks (``gateway.attempts``), in process."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest

from gateway.attempts import AttemptRunner, backoff
from gateway.config import parse_config
from gateway.errors import (
    ContextLengthExceeded,
    NoHealthyDeployment,
    Overloaded,
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from gateway.exchange import Exchange
from gateway.metrics import Metrics
from gateway.resilience.circuits import Circuits
from gateway.runtime import Runtime
from gateway.state import build_state


def make(models: dict, breaker: dict | None = None):
    cfg = parse_config({"providers": {"p": {"type": "mock"}}, "models": models,
                        "circuit_breaker": breaker or {"failure_threshold": 1000, "min_requests": 1000}})
    metrics = Metrics()
    health = Circuits(cfg, metrics, build_state(cfg.state, metrics))
    return Runtime.build(cfg, health=health), metrics


def deployments(*ids: str, **kw) -> list[dict]:
    return [{"id": i, "provider": "p", "model": "m", **kw} for i in ids]


class Script:
    """``attempt(deployment)``: pops the next scripted outcome for that deployment (default: success)."""

    def __init__(self, **outcomes) -> None:
        self.outcomes = {k: list(v) for k, v in outcomes.items()}
        self.calls: list[tuple[str, float]] = []
        self.started = time.monotonic()

    async def __call__(self, deployment):
        self.calls.append((deployment.id, time.monotonic() - self.started))
        queue = self.outcomes.get(deployment.id) or []
        outcome = queue.pop(0) if queue else "ok"
        if outcome == "hang":
            await asyncio.sleep(30)
        if isinstance(outcome, BaseException):
            raise outcome
        return f"answer from {deployment.id}"

    @property
    def order(self) -> list[str]:
        return [d for d, _ in self.calls]


def run(rt, metrics, group: str, script: Script):
    ex = Exchange(request_id="r", endpoint="chat")

    async def go():
        return await AttemptRunner(rt, metrics, ex).run(rt.config.models[group], script)
    return asyncio.run(go()), ex


def fallbacks(metrics, reason):
    return metrics.registry.get_sample_value("switchyard_fallbacks_total", {"reason": reason}) or 0


def test_retryable_failures_move_to_another_deployment():
    rt, metrics = make({"chat": {"strategy": "round_robin", "deployments": deployments("a", "b", "c")}})
    script = Script(a=[UpstreamError("500")], b=[Overloaded("503")])
    script.outcomes["c"] = [UpstreamError("500")]
    with pytest.raises((UpstreamError, Overloaded)):
        run(rt, metrics, "chat", script)
    assert sorted(script.order) == ["a", "b", "c"]  # each deployment once, while an untried one is left
    script = Script(a=[UpstreamError("500")], b=[Overloaded("503")])
    result, ex = run(rt, metrics, "chat", script)
    assert result.startswith("answer from") and len(set(script.order)) == len(script.order)
    assert ex.attempts[-1].outcome == "success"
    assert metrics.registry.get_sample_value("switchyard_attempts_total",
                                             {"deployment": "a", "outcome": "upstream_error"}) == 1


def test_retries_are_bounded_and_the_last_error_is_answered():
    rt, metrics = make({"chat": {"retries": 2, "deployments": deployments("a")}})
    script = Script(a=[UpstreamError("boom")] * 5)
    with pytest.raises(UpstreamError):
        run(rt, metrics, "chat", script)
    assert script.order == ["a", "a", "a"]  # the same deployment again when it is the only one


@pytest.mark.parametrize("error", [UpstreamClientError("bad", status=400), UpstreamClientError("no", status=404),
                                   ContextLengthExceeded("too long")])
def test_other_4xx_are_never_retried(error):
    rt, metrics = make({"chat": {"deployments": deployments("a", "b")}})
    script = Script(a=[error], b=[error])
    with pytest.raises(type(error)):
        run(rt, metrics, "chat", script)
    assert len(script.calls) == 1


def test_backoff_grows_with_jitter():
    for n in (1, 2, 3):
        values = [backoff(n) for _ in range(200)]
        assert min(values) >= 0.05 * 2 ** (n - 1) / 2 and max(values) <= 0.05 * 2 ** (n - 1)
        assert len(set(values)) > 100
    assert backoff(30) <= 2.0


def test_retry_after_is_honoured_on_the_same_deployment():
    rt, metrics = make({"chat": {"retries": 1, "deployments": deployments("a")}})
    script = Script(a=[UpstreamRateLimited("slow down", retry_after=0.6)])
    result, _ = run(rt, metrics, "chat", script)
    assert result == "answer from a" and script.calls[1][1] >= 0.6


def test_a_retry_after_longer_than_max_retry_wait_falls_back_at_once():
    rt, metrics = make({
        "chat": {"max_retry_wait": 1, "retries": 3, "fallbacks": ["backup"], "deployments": deployments("a")},
        "backup": {"deployments": deployments("z")},
    })
    script = Script(a=[UpstreamRateLimited("later", retry_after=30)])
    result, _ = run(rt, metrics, "chat", script)
    assert result == "answer from z" and script.order == ["a", "z"] and script.calls[1][1] < 0.5
    assert fallbacks(metrics, "rate_limited") == 1


def test_a_long_retry_after_without_fallback_answers_the_429():
    rt, metrics = make({"chat": {"max_retry_wait": 1, "retries": 3, "deployments": deployments("a")}})
    script = Script(a=[UpstreamRateLimited("later", retry_after=30)])
    started = time.monotonic()
    with pytest.raises(UpstreamRateLimited) as err:
        run(rt, metrics, "chat", script)
    assert err.value.retry_after == 30 and time.monotonic() - started < 0.5 and len(script.calls) == 1


def test_a_long_retry_after_still_lets_another_deployment_try():
    rt, metrics = make({"chat": {"max_retry_wait": 1, "strategy": "round_robin", "deployments": deployments("a", "b")}})
    script = Script(a=[UpstreamRateLimited("later", retry_after=30)])
    result, _ = run(rt, metrics, "chat", script)
    assert result == "answer from b"


def test_the_group_timeout_bounds_every_attempt_together_then_falls_back():
    rt, metrics = make({
        "chat": {"timeout": 0.5, "retries": 3, "fallbacks": ["backup"], "strategy": "round_robin",
                 "deployments": deployments("a", "b")},
        "backup": {"deployments": deployments("z")},
    })
    script = Script(a=["hang"], b=["hang"])
    started = time.monotonic()
    result, ex = run(rt, metrics, "chat", script)
    assert result == "answer from z" and script.order == ["a", "z"]
    assert 0.45 < time.monotonic() - started < 1.5
    assert ex.attempts[0].outcome == "timeout" and fallbacks(metrics, "timeout") == 1


def test_a_wait_past_the_deadline_is_not_waited():
    rt, metrics = make({"chat": {"timeout": 1, "retries": 2, "deployments": deployments("a")}})
    script = Script(a=[UpstreamRateLimited("wait", retry_after=5)])
    started = time.monotonic()
    with pytest.raises(UpstreamRateLimited):
        run(rt, metrics, "chat", script)
    assert time.monotonic() - started < 0.5


def test_fallbacks_in_order_then_their_own():
    rt, metrics = make({
        "chat": {"retries": 0, "fallbacks": ["b1", "b2"], "deployments": deployments("a")},
        "b1": {"retries": 0, "fallbacks": ["c1"], "deployments": deployments("x")},
        "b2": {"retries": 0, "deployments": deployments("y")},
        "c1": {"retries": 0, "deployments": deployments("w")},
    })
    script = Script(a=[UpstreamError("1")], x=[UpstreamTimeout("2")], y=[UpstreamConnectError("3")])
    result, _ = run(rt, metrics, "chat", script)
    assert result == "answer from w" and script.order == ["a", "x", "y", "w"]
    assert fallbacks(metrics, "error") == 2 and fallbacks(metrics, "timeout") == 1


def test_context_length_errors_go_to_the_context_window_fallbacks():
    rt, metrics = make({
        "chat": {"fallbacks": ["other"], "context_window_fallbacks": ["long"], "deployments": deployments("a")},
        "other": {"deployments": deployments("o")},
        "long": {"deployments": deployments("l")},
    })
    script = Script(a=[ContextLengthExceeded("too long")])
    result, _ = run(rt, metrics, "chat", script)
    assert result == "answer from l" and script.order == ["a", "l"]
    assert fallbacks(metrics, "context_window") == 1


def test_no_healthy_deployment_answers_at_once_with_retry_after():
    rt, metrics = make({"chat": {"deployments": deployments("a", "b")}})

    async def go():
        await rt.health.force("a", "open")
        await rt.health.force("b", "open")
        script = Script()
        started = time.monotonic()
        with pytest.raises(NoHealthyDeployment) as err:
            await AttemptRunner(rt, metrics, Exchange("r", "chat")).run(rt.config.models["chat"], script)
        assert time.monotonic() - started < 0.1 and not script.calls
        assert err.value.status == 503 and err.value.retry_after == 30
        assert err.value.response_headers()["retry-after"] == "30"
    asyncio.run(go())


def test_an_open_group_falls_back_and_a_real_error_beats_no_healthy():
    rt, metrics = make({
        "chat": {"retries": 0, "fallbacks": ["backup"], "deployments": deployments("a")},
        "backup": {"retries": 0, "deployments": deployments("z")},
    })

    async def go():
        await rt.health.force("a", "open")
        script = Script()
        assert await AttemptRunner(rt, metrics, Exchange("r", "chat")).run(rt.config.models["chat"], script) \
            == "answer from z"
        assert fallbacks(metrics, "no_healthy_deployment") == 1
        script = Script(z=[UpstreamError("down")])
        with pytest.raises(UpstreamError):
            await AttemptRunner(rt, metrics, Exchange("r", "chat")).run(rt.config.models["chat"], script)
    asyncio.run(go())


def test_open_circuits_are_skipped_and_failures_open_them():
    rt, metrics = make({"chat": {"retries": 1, "strategy": "round_robin", "deployments": deployments("a", "b")}},
                       breaker={"failure_threshold": 2, "cooldown_seconds": 30})
    script = Script(a=[UpstreamError("x")] * 2)
    for _ in range(4):
        run(rt, metrics, "chat", script)
    assert script.order.count("a") == 2
    assert rt.health.state(rt.config.deployments["a"]) == "open"
    script = Script()
    for _ in range(5):
        run(rt, metrics, "chat", script)
    assert set(script.order) == {"b"}


def test_max_concurrent_deployments_are_skipped():
    rt, metrics = make({"chat": {"strategy": "round_robin", "deployments": [
        {"id": "a", "provider": "p", "model": "m", "max_concurrent": 1},
        {"id": "b", "provider": "p", "model": "m"}]}})
    rt.balancer.stat("a").in_flight = 1
    script = Script()
    for _ in range(4):
        run(rt, metrics, "chat", script)
    assert set(script.order) == {"b"}


def test_a_stream_stays_in_flight_until_its_upstream_closes():
    rt, metrics = make({"chat": {"deployments": deployments("a")}})

    class Upstream:
        closed = 0

        def close(self):
            self.closed += 1

    class Live:
        def __init__(self):
            self.upstream = Upstream()

    async def attempt(deployment):
        return Live()

    async def go():
        live = await AttemptRunner(rt, metrics, Exchange("r", "chat")).run(rt.config.models["chat"], attempt)
        assert rt.balancer.stat("a").in_flight == 1
        live.upstream.close()
        live.upstream.close()
        assert rt.balancer.stat("a").in_flight == 0
    asyncio.run(go())


def test_a_cancelled_attempt_releases_its_probe():
    rt, metrics = make({"chat": {"timeout": 5, "deployments": deployments("a")}},
                       breaker={"failure_threshold": 1, "cooldown_seconds": 0.1})

    async def go():
        a = rt.config.deployments["a"]
        permit = await rt.health.acquire(a)
        await rt.health.report(permit, success=False)
        await asyncio.sleep(0.15)
        task = asyncio.ensure_future(AttemptRunner(rt, metrics, Exchange("r", "chat"))
                                     .run(rt.config.models["chat"], Script(a=["hang"])))
        await asyncio.sleep(0.05)
        assert not rt.health.available(a)  # the probe is out
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert rt.health.available(a) and rt.balancer.stat("a").in_flight == 0
    asyncio.run(go())


def test_every_attempt_is_recorded_for_the_exchange():
    rt, metrics = make({"chat": {"strategy": "round_robin", "deployments": deployments("a", "b")}})
    counts = defaultdict(int)
    script = Script(a=[UpstreamConnectError("refused")])
    _, ex = run(rt, metrics, "chat", script)
    for attempt in ex.attempts:
        counts[attempt.outcome] += 1
    assert counts == {"connect_error": 1, "success": 1}
    assert ex.headers()["x-switchyard-attempts"] == "2" and ex.deployment == "b"
