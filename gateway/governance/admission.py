"""The governance hooks on the request path (``gateway.hooks.Hooks``): admit, settle, may_use.

``admit`` runs in this order, and nothing refused before step 4 is counted against any limit:

1. model access: a virtual key's ``models`` globs (403 ``model_not_allowed``);
2. policies over the request text (400 ``policy_violation``, or a redacted copy of the body);
3. the key's ``max_tokens`` cap (set when absent, lowered when above; recorded as ``capped``);
4. budgets, then rpm/tpm of the key and its team: one atomic check-and-charge (429
   ``budget_exceeded`` with ``x-should-retry: false``, or 429 ``rate_limit_exceeded``).

A request with no limit and no budget makes no Redis call at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from gateway.auth import Identity
from gateway.config import ModelGroup
from gateway.errors import BudgetExceeded, ModelNotAllowed, RateLimited
from gateway.exchange import Exchange
from gateway.governance.cost import format_usd, seconds_to_rollover
from gateway.governance.headers import ratelimit_headers
from gateway.governance.ticket import Ticket
from gateway.governance.windows import BudgetLimit, Scope, Verdict
from gateway.hooks import Hooks

if TYPE_CHECKING:
    from gateway.governance.service import Governance

ADJECTIVE = {"day": "daily", "month": "monthly"}


class GovernanceHooks(Hooks):
    def __init__(self, gov: Governance) -> None:
        self.gov = gov

    def may_use(self, identity: Identity, model: str) -> bool:
        key = identity.policy
        return key is None or key.may_use(model)

    async def admit(self, runtime, identity: Identity, exchange: Exchange, group: ModelGroup,
                    body: dict[str, Any]) -> dict[str, Any]:
        gov = self.gov
        tables = gov.tables_for(runtime.config)
        key = identity.policy
        if key is not None and not key.may_use(group.name):
            raise ModelNotAllowed(f"this key may not call model '{group.name}'", param="model")
        endpoint = "embeddings" if exchange.endpoint == "embeddings" else "chat"
        if tables.policies:
            body = tables.policies.apply(body, endpoint, identity.name, identity.team, exchange.policy)
        if key is not None and key.spec.max_tokens and endpoint == "chat":
            body = _cap(body, key.spec.max_tokens, exchange)
        scopes, budgets = tables.limits_for(key)
        ticket = Ticket(gov, tables, exchange, endpoint, body, scopes, budgets)
        if tables.include_bodies:
            ticket.request_body = body
        if scopes or budgets:
            verdict = await gov.limiter.admit(scopes, budgets, ticket.member, ticket.tokens_for(scopes))
            ticket.observe(verdict, scopes)
            if not verdict.admitted:
                raise _refusal(gov, verdict, scopes, budgets)
        exchange.ticket = ticket
        return body

    async def limit_headers(self, runtime, identity: Identity, exchange: Exchange) -> None:
        if identity.policy is None or "x-ratelimit-limit-requests" in exchange.extra_headers \
                or "x-ratelimit-limit-tokens" in exchange.extra_headers:
            return
        scopes, _ = self.gov.tables_for(runtime.config).limits_for(identity.policy)
        scopes = [s for s in scopes if s.rpm or s.tpm]
        if scopes:
            verdict = await self.gov.limiter.peek(scopes)
            exchange.extra_headers.update(
                ratelimit_headers(list(zip(scopes, verdict.states)), verdict.now_ms, self.gov.limiter.window_ms))

    async def settle(self, runtime, identity: Identity, exchange: Exchange, response: bytes | None = None) -> None:
        ticket: Ticket | None = exchange.ticket
        if ticket is None:
            return
        if ticket.request_body is not None and response is not None:
            ticket.response_body = _redacted_response(ticket, identity, response)
        ticket.price()
        if ticket.cost_nanos is not None and not exchange.stream:
            exchange.extra_headers["x-switchyard-cost-usd"] = format_usd(ticket.cost_nanos)
        await ticket.settle()


def _cap(body: dict[str, Any], cap: int, exchange: Exchange) -> dict[str, Any]:
    present = [name for name in ("max_completion_tokens", "max_tokens") if body.get(name) is not None]
    if present and all(isinstance(body[n], int) and body[n] <= cap for n in present):
        return body
    body = dict(body)
    if present:
        for name in present:
            if not isinstance(body[name], int) or body[name] > cap:
                body[name] = cap
    else:
        body["max_completion_tokens"] = cap
    exchange.policy.append({"name": "max_tokens", "decision": "capped"})
    return body


def _refusal(gov: Governance, verdict: Verdict, scopes: list[Scope], budgets: list[BudgetLimit]):
    if verdict.budget_index >= 0:
        budget = budgets[verdict.budget_index]
        gov.metrics.ratelimited.labels(f"{budget.kind}_budget").inc()
        return BudgetExceeded(
            f"the {budget.kind} '{budget.name}' has used its {ADJECTIVE[budget.period]} budget of "
            f"${format_usd(budget.limit_nanos)}; it renews at the start of the next UTC {budget.period}",
            retry_after=seconds_to_rollover(budget.period), headers={"x-should-retry": "false"})
    index, kind, retry_ms = verdict.refusal()  # type: ignore[misc]
    scope = scopes[index]
    gov.metrics.ratelimited.labels(scope.kind).inc()
    limit = f"{scope.rpm} requests" if kind == "rpm" else f"{scope.tpm} tokens"
    return RateLimited(f"rate limit reached for {scope.kind} '{scope.name}': {limit} per minute; "
                       f"retry in {retry_ms / 1000:.3g}s", retry_after=retry_ms / 1000,
                       headers={"retry-after-ms": str(max(0, retry_ms))})


def _redacted_response(ticket: Ticket, identity: Identity, response: bytes) -> Any:
    """The audit's copy of a response, with the caller's redact policies applied to the answers."""
    try:
        data = orjson.loads(response)
    except orjson.JSONDecodeError:
        return None
    policies = ticket.tables.policies
    for choice in data.get("choices") or () if isinstance(data, dict) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = policies.redact(message["content"], identity.name, identity.team)
    return data
