"""One request's governance state, from admission to settlement (``Exchange.ticket``).

A ticket knows the request's limit scopes and budgets, its token estimate (computed only when a
``tpm`` asks for it), the deployments it claimed while routing, and whether it has been settled.
``claim`` is how routing asks for a deployment's rpm/tpm (``False``: skip that deployment); ``price``
turns the usage into cost (estimating the prompt when a vendor reported nothing); ``settle`` trues up
the token reservations and charges the budgets, at most once.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from gateway.config import Deployment
from gateway.exchange import Exchange
from gateway.governance.headers import ratelimit_headers
from gateway.governance.text import completion_allowance, estimate_prompt_tokens
from gateway.governance.windows import BudgetLimit, Scope, ScopeState, Verdict
from providers.base import Usage

if TYPE_CHECKING:
    from gateway.governance.service import Governance, Tables


class Ticket:
    __slots__ = ("gov", "tables", "ex", "_member", "endpoint", "body", "scopes", "budgets", "windows",
                 "deployment_window", "now_ms", "claims", "cost_nanos", "priced", "settled", "_estimate",
                 "request_body", "response_body")

    def __init__(self, gov: Governance, tables: Tables, ex: Exchange, endpoint: str, body: dict[str, Any],
                 scopes: list[Scope], budgets: list[BudgetLimit]) -> None:
        self.gov = gov
        self.tables = tables
        self.ex = ex
        self._member: str | None = None
        self.endpoint = endpoint
        self.body = body
        self.scopes = scopes
        self.budgets = budgets
        self.windows: list[tuple[Scope, ScopeState]] = []
        self.deployment_window: tuple[Scope, ScopeState] | None = None
        self.now_ms = 0
        self.claims: list[tuple[Scope, str, str]] = []  # (scope, member, deployment id)
        self.cost_nanos: int | None = None
        self.priced = False
        self.settled = False
        self._estimate: int | None = None
        self.request_body: Any = None  # kept for the audit only when include_bodies is on
        self.response_body: Any = None

    @property
    def member(self) -> str:
        """This request's id in the limit windows (made only when a limit needs it)."""
        if self._member is None:
            self._member = uuid.uuid4().hex
        return self._member

    @property
    def estimate(self) -> int:
        """Tokens to reserve: the estimated prompt plus the most the answer may use."""
        if self._estimate is None:
            self._estimate = (estimate_prompt_tokens(self.body, self.endpoint)
                              + completion_allowance(self.body, self.endpoint))
        return self._estimate

    def tokens_for(self, scopes: list[Scope]) -> int:
        return self.estimate if any(s.tpm for s in scopes) else 0

    def observe(self, verdict: Verdict, scopes: list[Scope], deployment: bool = False) -> None:
        """Remember the windows a verdict describes and refresh the rate-limit headers."""
        pairs = list(zip(scopes, verdict.states))
        if deployment:
            self.deployment_window = pairs[0] if pairs else None
        else:
            self.windows = pairs
        self.now_ms = verdict.now_ms or self.now_ms
        shown = self.windows + ([self.deployment_window] if self.deployment_window else [])
        if shown:
            self.ex.extra_headers.update(ratelimit_headers(shown, self.now_ms, self.gov.limiter.window_ms))

    async def claim(self, deployment: Deployment) -> bool:
        scope = self.tables.deployment_scopes.get(deployment.id)
        if scope is None:
            return True
        member = f"{self.member}:{len(self.claims) + 1}"
        verdict = await self.gov.limiter.admit([scope], [], member, self.tokens_for([scope]))
        if not verdict.admitted:
            self.gov.metrics.ratelimited.labels("deployment").inc()
            return False
        self.claims.append((scope, member, deployment.id))
        self.observe(verdict, [scope], deployment=True)
        return True

    def price(self) -> None:
        """Cost from the usage (once); a forwarded request without usage gets an estimated prompt."""
        if self.priced:
            return
        self.priced = True
        ex = self.ex
        if ex.usage is None and any(a.outcome == "success" for a in ex.attempts):
            ex.usage = Usage(prompt_tokens=estimate_prompt_tokens(self.body, self.endpoint), estimated=True)
        if ex.usage is None or ex.deployment is None:
            return
        rates = self.tables.rates.get(ex.deployment)
        if rates is None:
            return
        self.cost_nanos = rates.cost_nanos(ex.usage)
        ex.cost_usd = self.cost_nanos / 1_000_000_000

    async def settle(self) -> None:
        if self.settled:
            return
        self.settled = True
        self.price()
        if not self.scopes and not self.budgets and not self.claims:
            return
        limiter = self.gov.limiter
        actual = self.ex.usage.total_tokens if self.ex.usage is not None else 0
        await limiter.settle(self.scopes, self.budgets, self.member, actual, self.cost_nanos or 0)
        winner = next((m for _, m, d in reversed(self.claims) if d == self.ex.deployment and self.ex.usage), None)
        for scope, member, _ in self.claims:
            if scope.tpm:
                await limiter.settle([scope], [], member, actual if member == winner else 0, 0)
