"""Rate limits and budget counters: one atomic check-and-charge per request, exact across replicas.

``Limiter.admit`` runs the ``lua.ADMIT`` script (one round trip, and only for a request that has a
limit or a budget); ``settle`` trues a token reservation up to the real usage and adds the cost to
the budget counters (``lua.SETTLE``). With ``state.backend: memory``, or while Redis is unreachable
or slow, the same rules run in process (``windows.LocalWindows``): each replica then enforces every
limit alone (fail open), counted in ``switchyard_state_fail_open_total``.

These calls wait for Redis up to ``max(state.timeout_ms, MIN_TIMEOUT_MS)``: under a burst, the event
loop's own lag can exceed a short time-out while Redis is perfectly healthy, and a timed-out call
gives up exactness (that call alone: ``RedisState`` marks Redis down only once a PING confirms it).
A Redis that refuses connections fails at once; a hung one costs the requests in flight that long
until the confirming PING times out, then it is marked down and no call waits until it answers again.
"""

from __future__ import annotations

from typing import Any

from gateway.governance.lua import ADMIT, PEEK, SETTLE
from gateway.governance.windows import ADMITTED, WINDOW_MS, BudgetLimit, LocalWindows, Scope, ScopeState, Verdict
from gateway.state import StateBackend

MIN_TIMEOUT_MS = 1000
TIDY_EVERY = 10_000  # local admissions between sweeps of idle windows


class Limiter:
    def __init__(self, state: StateBackend, window_ms: int = WINDOW_MS) -> None:
        self.state = state
        self.window_ms = window_ms
        self.local = LocalWindows(window_ms)
        self.timeout_ms = max(state.config.timeout_ms, MIN_TIMEOUT_MS)
        self._local_calls = 0
        self._admit_script = self._settle_script = self._peek_script = None
        if state.redis is not None:
            self._admit_script = state.redis.register_script(ADMIT)
            self._peek_script = state.redis.register_script(PEEK)
            self._settle_script = state.redis.register_script(SETTLE)

    def _scope_keys(self, scope: Scope, parts: str) -> list[str]:
        return [self.state.key("rl", scope.id, part) for part in parts]

    async def admit(self, scopes: list[Scope], budgets: list[BudgetLimit], member: str, tokens: int) -> Verdict:
        if not scopes and not budgets:
            return ADMITTED

        async def remote(redis: Any) -> Verdict:
            keys: list[str] = []
            args: list[Any] = [len(scopes), self.window_ms, member]
            for scope in scopes:
                keys += self._scope_keys(scope, "rthn")
                args += [scope.rpm or 0, scope.tpm or 0, scope.reserve(tokens)]
            keys += [self.state.key("budget", b.counter) for b in budgets]
            args += [b.limit_nanos for b in budgets]
            admitted, now, budget_index, states = await self._admit_script(keys=keys, args=args, client=redis)
            return Verdict(admitted=bool(admitted), now_ms=int(now), budget_index=int(budget_index) - 1,
                           states=[_state(s) for s in states])

        return await self.state.run("ratelimit", remote, lambda: self._local_admit(scopes, budgets, member, tokens),
                                    timeout_ms=self.timeout_ms)

    async def peek(self, scopes: list[Scope]) -> Verdict:
        """The windows of ``scopes`` without charging them (one round trip; only off the success path)."""
        scopes = [s for s in scopes if s.rpm or s.tpm]
        if not scopes:
            return ADMITTED

        async def remote(redis: Any) -> Verdict:
            keys: list[str] = []
            args: list[Any] = [len(scopes), self.window_ms, ""]
            for scope in scopes:
                keys += self._scope_keys(scope, "rthn")
                args += [scope.rpm or 0, scope.tpm or 0, 0]
            now, states = await self._peek_script(keys=keys, args=args, client=redis)
            return Verdict(admitted=True, now_ms=int(now), states=[_state(s) for s in states])

        return await self.state.run("ratelimit", remote, lambda: self.local.peek(scopes), timeout_ms=self.timeout_ms)

    def _local_admit(self, scopes: list[Scope], budgets: list[BudgetLimit], member: str, tokens: int) -> Verdict:
        self._local_calls += 1
        if self._local_calls % TIDY_EVERY == 0:
            self.local.forget_idle()
        return self.local.admit(scopes, budgets, member, tokens)

    async def settle(self, scopes: list[Scope], budgets: list[BudgetLimit], member: str, actual: int,
                     cost_nanos: int) -> list[int]:
        scopes = [s for s in scopes if s.tpm]
        if not scopes and not (budgets and cost_nanos):
            return []

        async def remote(redis: Any) -> list[int]:
            keys = [self.state.key("budget", b.counter) for b in budgets]
            for scope in scopes:
                keys += self._scope_keys(scope, "thn")
            args = [len(budgets), cost_nanos, member, actual, self.window_ms] + [b.ttl for b in budgets]
            values = [int(v) for v in await self._settle_script(keys=keys, args=args, client=redis)]
            for budget, value in zip(budgets, values):
                self.local.spent[budget.counter] = value  # the mirror used when Redis goes away
            return values

        return await self.state.run("ratelimit", remote,
                                    lambda: self.local.settle(scopes, budgets, member, actual, cost_nanos),
                                    timeout_ms=self.timeout_ms)

    async def spent(self, budgets: list[BudgetLimit]) -> list[int]:
        """Current budget counters (admin views; not on the request path)."""
        if not budgets:
            return []

        async def remote(redis: Any) -> list[int]:
            values = await redis.mget([self.state.key("budget", b.counter) for b in budgets])
            return [int(v or 0) for v in values]

        return await self.state.run("budget_read", remote, lambda: [self.local.spent.get(b.counter, 0) for b in budgets])


def _state(raw: list[Any]) -> ScopeState:
    count, total, oldest_request, oldest_token, refused, retry = raw
    if isinstance(refused, bytes):
        refused = refused.decode()
    return ScopeState(count=int(count), total=int(total), oldest_request_ms=int(oldest_request),
                      oldest_token_ms=int(oldest_token), refused=refused or "", retry_ms=int(retry))
