"""Exact sliding-window limits, in process: the local half of ``limiter.Limiter``.

Each scope (a key, a team, a deployment) keeps a log of the requests and of the token reservations
admitted in the last ``window_ms``. ``admit`` checks every scope and the budgets, and charges all of
them only when none refuses (so a refused request is never counted). ``settle`` replaces a token
reservation with the real usage. The Redis half (``lua.py``) implements exactly the same rules.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

WINDOW_MS = 60_000


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str  # "key" | "team" | "deployment"
    name: str
    rpm: int | None = None
    tpm: int | None = None

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"

    def reserve(self, tokens: int) -> int:
        """A reservation never exceeds the limit, so one large request can still pass an empty window."""
        return min(tokens, self.tpm) if self.tpm else 0


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    kind: str  # "key" | "team"
    name: str
    counter: str  # "<kind>:<name>:<period id>"
    limit_nanos: int
    period: str
    ttl: int  # seconds the counter is kept


@dataclass(slots=True)
class ScopeState:
    """A scope's window after the decision (after the charge when admitted)."""

    count: int = 0  # requests in the window
    total: int = 0  # tokens in the window
    oldest_request_ms: int = 0  # age anchors for the reset headers (0: empty)
    oldest_token_ms: int = 0
    refused: str = ""  # "" | "rpm" | "tpm"
    retry_ms: int = 0


@dataclass(slots=True)
class Verdict:
    admitted: bool
    now_ms: int = 0
    states: list[ScopeState] = field(default_factory=list)
    budget_index: int = -1  # the budget that refused, when one did

    def refusal(self) -> tuple[int, str, int] | None:
        """(scope index, 'rpm'|'tpm', retry ms) of the first refusing scope; retry is the longest wait."""
        refused = [(i, s.refused) for i, s in enumerate(self.states) if s.refused]
        if not refused:
            return None
        return refused[0][0], refused[0][1], max(s.retry_ms for s in self.states if s.refused)


ADMITTED = Verdict(admitted=True)


class _Window:
    __slots__ = ("requests", "tokens", "total")

    def __init__(self) -> None:
        self.requests: deque[int] = deque()
        self.tokens: OrderedDict[str, list[int]] = OrderedDict()  # member -> [ms, tokens], oldest first
        self.total = 0

    def evict(self, cutoff: int) -> None:
        requests = self.requests
        while requests and requests[0] <= cutoff:
            requests.popleft()
        tokens = self.tokens
        while tokens:
            ms, count = next(iter(tokens.values()))
            if ms > cutoff:
                break
            tokens.popitem(last=False)
            self.total -= count


class LocalWindows:
    def __init__(self, window_ms: int = WINDOW_MS, clock=time.time) -> None:
        self.window_ms = window_ms
        self.clock = clock
        self.windows: dict[str, _Window] = {}
        self.spent: dict[str, int] = {}  # budget counter -> nano-USD (mirror of Redis when shared)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _window(self, scope: Scope) -> _Window:
        window = self.windows.get(scope.id)
        if window is None:
            window = self.windows[scope.id] = _Window()
        return window

    def peek(self, scopes: list[Scope]) -> Verdict:
        """The scopes' windows as they are, charging nothing (rate-limit headers of refused requests)."""
        now = self.now_ms()
        verdict = Verdict(admitted=True, now_ms=now)
        for scope in scopes:
            window = self._window(scope)
            window.evict(now - self.window_ms)
            state = ScopeState()
            self._describe(window, state)
            verdict.states.append(state)
        return verdict

    def admit(self, scopes: list[Scope], budgets: list[BudgetLimit], member: str, tokens: int) -> Verdict:
        now = self.now_ms()
        cutoff = now - self.window_ms
        verdict = Verdict(admitted=True, now_ms=now)
        for index, budget in enumerate(budgets):
            if self.spent.get(budget.counter, 0) >= budget.limit_nanos:
                verdict.admitted, verdict.budget_index = False, index
                break
        windows = [self._window(scope) for scope in scopes]
        for scope, window in zip(scopes, windows):
            window.evict(cutoff)
            state = self._check(scope, window, scope.reserve(tokens), now)
            verdict.states.append(state)
            if state.refused:
                verdict.admitted = False
        if verdict.admitted:
            for scope, window, state in zip(scopes, windows, verdict.states):
                if scope.rpm:
                    window.requests.append(now)
                if scope.tpm:
                    reserved = scope.reserve(tokens)
                    window.tokens[member] = [now, reserved]
                    window.total += reserved
                self._describe(window, state)
        return verdict

    def _check(self, scope: Scope, window: _Window, reserve: int, now: int) -> ScopeState:
        state = ScopeState()
        self._describe(window, state)
        if scope.rpm and state.count >= scope.rpm:
            state.refused = "rpm"
            state.retry_ms = window.requests[state.count - scope.rpm] + self.window_ms - now
        if scope.tpm and window.total + reserve > scope.tpm:
            need, freed = window.total + reserve - scope.tpm, 0
            for ms, count in window.tokens.values():
                freed += count
                if freed >= need:
                    retry = ms + self.window_ms - now
                    break
            else:
                retry = self.window_ms
            state.retry_ms = max(state.retry_ms, retry)
            state.refused = state.refused or "tpm"
        return state

    @staticmethod
    def _describe(window: _Window, state: ScopeState) -> None:
        state.count = len(window.requests)
        state.total = window.total
        state.oldest_request_ms = window.requests[0] if window.requests else 0
        state.oldest_token_ms = next(iter(window.tokens.values()))[0] if window.tokens else 0

    def settle(self, scopes: list[Scope], budgets: list[BudgetLimit], member: str, actual: int,
               cost_nanos: int) -> list[int]:
        for budget in budgets:
            self.spent[budget.counter] = self.spent.get(budget.counter, 0) + cost_nanos
        now = self.now_ms()
        for scope in scopes:
            if not scope.tpm:
                continue
            window = self._window(scope)
            entry = window.tokens.get(member)
            if entry is not None and entry[0] > now - self.window_ms:
                window.total += actual - entry[1]
                entry[1] = actual
                continue
            if entry is not None:  # still logged, but out of the window
                del window.tokens[member]
                window.total -= entry[1]
            if actual > 0:  # the reservation already left the window (a long stream): charge it now
                window.tokens[member + "+"] = [now, actual]
                window.total += actual
        return [self.spent.get(b.counter, 0) for b in budgets]

    def forget_idle(self) -> None:
        """Drop windows with nothing left in them (called now and then to bound memory)."""
        cutoff = self.now_ms() - self.window_ms
        for key in list(self.windows):
            window = self.windows[key]
            window.evict(cutoff)
            if not window.requests and not window.tokens:
                del self.windows[key]
