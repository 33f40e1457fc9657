"""``Circuits`` with the memory backend: the Health the pipeline sees, forced states, reloads, gauges."""

from __future__ import annotations

import asyncio

from gateway.config import parse_config
from gateway.errors import UpstreamConnectError
from gateway.metrics import Metrics
from gateway.resilience.circuits import Circuits
from gateway.state import build_state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(**breaker):
    return parse_config({
        "providers": {"a": {"type": "mock"}, "b": {"type": "mock"}},
        "circuit_breaker": {"failure_threshold": 2, "cooldown_seconds": 10, **breaker},
        "models": {"chat": {"timeout": 5, "deployments": [{"id": "one", "provider": "a", "model": "m"},
                                                          {"id": "two", "provider": "b", "model": "m",
                                                           "circuit_breaker": {"failure_threshold": 4}}]}},
    })


def circuits(cfg=None, clock=None):
    cfg = cfg or config()
    metrics = Metrics()
    return Circuits(cfg, metrics, build_state(cfg.state, metrics), clock=clock or Clock()), cfg, metrics


def gauge(metrics, dep):
    return metrics.registry.get_sample_value("switchyard_circuit_state", {"deployment": dep})


def run(coro):
    return asyncio.run(coro)


async def fail(c, d, times=1, **kw):
    for _ in range(times):
        permit = await c.acquire(d)
        assert permit is not None
        await c.report(permit, success=False, **kw)


def test_failures_open_the_circuit_per_deployment_settings():
    c, cfg, metrics = circuits()
    one, two = cfg.models["chat"].deployments

    async def go():
        await fail(c, one, 2)
        await fail(c, two, 3)
        assert c.state(one) == "open" and await c.acquire(one) is None and not c.available(one)
        assert c.state(two) == "closed"  # its own threshold is 4
        assert gauge(metrics, "one") == 2 and gauge(metrics, "two") == 0
    run(go())


def test_half_open_lets_one_probe_through_and_its_success_closes():
    clock = Clock()
    c, cfg, metrics = circuits(clock=clock)
    one = cfg.models["chat"].deployments[0]

    async def go():
        await fail(c, one, 2)
        assert c.retry_after([one]) == 10
        clock.now += 10
        assert c.state(one) == "half_open"
        probe = await c.acquire(one)
        assert probe is not None and probe.local_probe
        assert await c.acquire(one) is None and c.retry_after([one]) == 6  # the lease: timeout 5 s + 1
        await c.report(probe, success=True)
        assert c.state(one) == "closed" and gauge(metrics, "one") == 0
    run(go())


def test_failures_that_do_not_count_change_nothing():
    c, cfg, _ = circuits()
    one = cfg.models["chat"].deployments[0]

    async def go():
        await fail(c, one, 5, counts=False)
        assert c.state(one) == "closed"
    run(go())


def test_connect_errors_count_locally_with_the_memory_backend():
    c, cfg, _ = circuits()
    one = cfg.models["chat"].deployments[0]

    async def go():
        await fail(c, one, 2, local=isinstance(UpstreamConnectError("x"), UpstreamConnectError))
        assert c.state(one) == "open"
    run(go())


def test_forced_states_win_until_auto():
    c, cfg, metrics = circuits()
    one = cfg.models["chat"].deployments[0]

    async def go():
        await c.force("one", "open")
        assert c.state(one) == "open" and await c.acquire(one) is None and gauge(metrics, "one") == 2
        await c.force("one", "closed")
        await fail(c, one, 5)
        assert c.state(one) == "closed" and await c.acquire(one) is not None
        await c.force("one", "auto")
        assert c.state(one) == "open"  # the failures counted meanwhile opened it
        assert c.describe(one)["forced"] is None
    run(go())


def test_reload_keeps_breakers_of_surviving_ids():
    c, cfg, metrics = circuits()
    one = cfg.models["chat"].deployments[0]

    async def go():
        await fail(c, one, 2)
        new = parse_config({
            "providers": {"a": {"type": "mock"}},
            "models": {"chat": {"deployments": [{"id": "one", "provider": "a", "model": "m2"},
                                                {"id": "three", "provider": "a", "model": "m"}]}},
        })
        c.configure(new)
        one_again, three = new.models["chat"].deployments
        assert c.state(one_again) == "open" and c.state(three) == "closed"
        assert "two" not in c.local and gauge(metrics, "two") is None
        assert c.local["one"].settings.failure_threshold == 5  # the new file's defaults
    run(go())


def test_retry_after_is_the_time_to_the_first_probe():
    clock = Clock()
    c, cfg, _ = circuits(clock=clock)
    one, two = cfg.models["chat"].deployments

    async def go():
        await fail(c, one, 2)
        clock.now += 3
        await fail(c, two, 4)
        assert c.retry_after([one, two]) == 7
        clock.now += 6.5
        assert c.retry_after([one, two]) == 1  # never less than a second
    run(go())
