"""The Lua half of the limits against a real Redis: same rules as the local half, exact under concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.config import StateConfig
from gateway.governance.limiter import Limiter
from gateway.governance.windows import BudgetLimit, Scope
from gateway.metrics import Metrics
from gateway.state import RedisState
from tests.fakes.server import free_port


def run(coroutine_function, url: str, window_ms: int = 60_000, timeout_ms: int = 2000):
    async def main():
        state = RedisState(StateConfig(backend="redis", url=url, key_prefix=f"t{uuid.uuid4().hex[:8]}:",
                                       timeout_ms=timeout_ms), Metrics())
        await state.start()
        try:
            return await coroutine_function(Limiter(state, window_ms=window_ms), state)
        finally:
            await state.close()
    return asyncio.run(main())


def test_rpm_is_exact_under_200_concurrent_requests(redis_url):
    async def body(limiter, state):
        key = Scope("key", "k", rpm=50)
        verdicts = await asyncio.gather(*(limiter.admit([key], [], f"m{i}", 0) for i in range(200)))
        assert sum(v.admitted for v in verdicts) == 50
        assert state.up  # no call failed open
        refused = [v for v in verdicts if not v.admitted]
        assert all(v.refusal()[1] == "rpm" and 0 < v.refusal()[2] <= 60_000 for v in refused)
    run(body, redis_url)


def test_tpm_concurrent_reservations_never_exceed_the_limit(redis_url):
    async def body(limiter, state):
        key = Scope("key", "k", tpm=1000)
        verdicts = await asyncio.gather(*(limiter.admit([key], [], f"m{i}", 70) for i in range(100)))
        admitted = sum(v.admitted for v in verdicts)
        assert admitted == 1000 // 70
        assert max(v.states[0].total for v in verdicts) <= 1000
    run(body, redis_url)


def test_settle_frees_unused_reservation_and_refused_requests_are_not_charged(redis_url):
    async def body(limiter, state):
        key, team = Scope("key", "k", tpm=100), Scope("team", "t", rpm=1)
        assert (await limiter.admit([key, team], [], "a", 60)).admitted
        verdict = await limiter.admit([key, team], [], "b", 10)
        assert not verdict.admitted and verdict.refusal()[:2] == (1, "rpm")
        assert verdict.states[0].total == 60  # "b" reserved nothing in the key's window
        await limiter.settle([key], [], "a", 15, 0)
        verdict = await limiter.admit([key], [], "c", 85)
        assert verdict.admitted and verdict.states[0].total == 100
        assert not (await limiter.admit([key], [], "d", 1)).admitted
    run(body, redis_url)


def test_window_slides(redis_url):
    async def body(limiter, state):
        key = Scope("key", "k", rpm=2, tpm=10)
        assert (await limiter.admit([key], [], "a", 5)).admitted
        assert (await limiter.admit([key], [], "b", 5)).admitted
        verdict = await limiter.admit([key], [], "c", 5)
        assert not verdict.admitted and 0 < verdict.refusal()[2] <= 300
        await asyncio.sleep(0.35)
        verdict = await limiter.admit([key], [], "d", 5)
        assert verdict.admitted and verdict.states[0].count == 1 and verdict.states[0].total == 5
        await asyncio.sleep(0.35)
        await limiter.settle([key], [], "d", 9, 0)  # "d" left the window: its usage is charged now
        verdict = await limiter.admit([key], [], "e", 2)
        assert not verdict.admitted and verdict.refusal()[1] == "tpm"
    run(body, redis_url, window_ms=300)


def test_budgets_in_redis(redis_url):
    async def body(limiter, state):
        budget = BudgetLimit("key", "k", "key:k:2025-01-01", limit_nanos=10_000, period="day", ttl=100)
        team = BudgetLimit("team", "t", "team:t:2025-01", limit_nanos=10**12, period="month", ttl=100)
        assert (await limiter.admit([], [budget, team], "a", 0)).admitted
        assert await limiter.settle([], [budget, team], "a", 0, 9_999) == [9_999, 9_999]
        assert (await limiter.admit([], [budget, team], "b", 0)).admitted
        await limiter.settle([], [budget, team], "b", 0, 5_000)
        verdict = await limiter.admit([Scope("key", "k", rpm=5)], [budget, team], "c", 0)
        assert not verdict.admitted and verdict.budget_index == 0
        assert verdict.states[0].count == 0  # the budget refusal charged no window
        assert await limiter.spent([budget, team]) == [14_999, 14_999]
        assert 0 < await state.redis.ttl(state.key("budget", budget.counter)) <= 100
    run(body, redis_url)


def test_redis_down_fails_open_to_local_windows():
    url = f"redis://127.0.0.1:{free_port()}/0"

    async def body(limiter, state):
        key = Scope("key", "k", rpm=2)
        results = [(await limiter.admit([key], [], f"m{i}", 0)).admitted for i in range(3)]
        assert results == [True, True, False]  # enforced by this replica alone
        assert not state.up
        fail_open = state.metrics.state_fail_open.labels("ratelimit")._value.get()
        assert fail_open >= 2
    run(body, url, timeout_ms=100)


@pytest.mark.parametrize("tokens", [0, 30])
def test_local_and_redis_agree_step_by_step(redis_url, tokens):
    from gateway.governance.windows import LocalWindows

    async def body(limiter, state):
        local = LocalWindows()
        key, team = Scope("key", "k", rpm=4, tpm=100), Scope("team", "t", rpm=6, tpm=150)
        for i in range(8):
            remote = await limiter.admit([key, team], [], f"m{i}", tokens)
            mine = local.admit([key, team], [], f"m{i}", tokens)
            assert remote.admitted == mine.admitted
            assert [(s.count, s.total, s.refused) for s in remote.states] == \
                   [(s.count, s.total, s.refused) for s in mine.states]
            if remote.admitted and i % 2:
                await limiter.settle([key, team], [], f"m{i}", tokens // 3, 0)
                local.settle([key, team], [], f"m{i}", tokens // 3, 0)
    run(body, redis_url)


def test_peek_reads_the_windows_without_charging(redis_url):
    async def body(limiter, state):
        key = Scope("key", "k", rpm=5, tpm=100)
        for member in ("a", "b"):
            assert (await limiter.admit([key], [], member, 30)).admitted
        for _ in range(3):
            peeked = await limiter.peek([key])
            assert (peeked.states[0].count, peeked.states[0].total) == (2, 60)
            assert peeked.states[0].oldest_request_ms > 0 and peeked.now_ms >= peeked.states[0].oldest_request_ms
        local = limiter.local
        assert (local.peek([key]).states[0].count, local.peek([key]).states[0].total) == (0, 0)
        local.admit([key], [], "x", 10)
        assert (local.peek([key]).states[0].count, local.peek([key]).states[0].total) == (1, 10)
    run(body, redis_url)
