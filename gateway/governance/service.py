"""``Governance``: the one object the app holds (``gw.governance``), built once, reconfigured per config.

``install(config, state)`` is called by ``Switchyard.install`` at start-up and on every reload:
per-config tables are rebuilt (teams, policies, prices, deployment limits, YAML keys); the parts that
live on the state backend (limiter, created keys, spend ledger) are rebuilt only when the backend
changes; the audit sinks only when the ``audit`` section changes. ``record`` is the recorder sink
called once per finished ``/v1`` exchange: it prices and settles what the request path did not,
adds to the spend ledger and the metrics, and hands one record to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gateway.config import Config
from gateway.exchange import Exchange
from gateway.governance.audit import AuditLog, audit_record
from gateway.governance.bus import Bus
from gateway.governance.cost import PriceRates, period_id, period_ttl_seconds
from gateway.governance.keys import KeyStore, VirtualKey
from gateway.governance.limiter import Limiter
from gateway.governance.policies import PolicySet
from gateway.governance.spend import SpendLedger
from gateway.governance.sync import CreatedKeys
from gateway.governance.windows import BudgetLimit, Scope
from gateway.metrics import Metrics
from gateway.state import StateBackend

log = logging.getLogger("switchyard.governance")


class Tables:
    """What one config says, prepared for the request path."""

    def __init__(self, config: Config) -> None:
        gov = config.governance
        self.config = config
        self.teams = gov.teams
        self.policies = PolicySet(gov.policies)
        self.include_bodies = gov.audit.include_bodies
        deployments = config.deployments
        self.rates = {d.id: PriceRates(p) for d in deployments.values() if (p := config.price_for(d)) is not None}
        self.unpriced = sorted(d for d in deployments if d not in self.rates)
        self.deployment_scopes = {d.id: Scope("deployment", d.id, d.rpm, d.tpm)
                                  for d in deployments.values() if d.rpm or d.tpm}

    def limits_for(self, key: VirtualKey | None) -> tuple[list[Scope], list[BudgetLimit]]:
        if key is None:
            return [], []
        spec = key.spec
        scopes: list[Scope] = []
        budgets: list[BudgetLimit] = []
        if spec.rpm or spec.tpm:
            scopes.append(Scope("key", spec.name, spec.rpm, spec.tpm))
        if spec.budget is not None:
            budgets.append(_budget("key", spec.name, spec.budget))
        team = self.teams.get(spec.team) if spec.team else None
        if team is not None:
            if team.rpm or team.tpm:
                scopes.append(Scope("team", team.name, team.rpm, team.tpm))
            if team.budget is not None:
                budgets.append(_budget("team", team.name, team.budget))
        return scopes, budgets


def _budget(kind: str, name: str, budget) -> BudgetLimit:
    return BudgetLimit(kind=kind, name=name, counter=f"{kind}:{name}:{period_id(budget.period)}",
                       limit_nanos=budget.nanos, period=budget.period, ttl=period_ttl_seconds(budget.period))


class Governance:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.keys = KeyStore()
        self.tables: Tables | None = None
        self.state: StateBackend | None = None
        self.client: Any = None  # Redis client for background work (sync, ledger, audit stream, admin)
        self.limiter: Limiter = None  # type: ignore[assignment]  # set by install
        self.created: CreatedKeys = None  # type: ignore[assignment]
        self.bus: Bus | None = None  # replica-to-replica broadcasts (Redis only)
        self.ledger: SpendLedger = None  # type: ignore[assignment]
        self.audit: AuditLog | None = None
        self._background: set[asyncio.Task] = set()

    # -- configuration ----------------------------------------------------------------------------

    def tables_for(self, config: Config) -> Tables:
        tables = self.tables
        if tables is None or tables.config is not config:  # a request still on an older runtime
            tables = Tables(config)
        return tables

    def virtual_lookup(self, config: Config):
        """The Authenticator's virtual-key lookup, or None when no virtual key can exist."""
        if config.governance.keys or config.server.master_key:
            return self.keys.lookup
        return None

    async def install(self, config: Config, state: StateBackend) -> None:
        self.tables = Tables(config)
        self.keys.configure(config.governance.keys)
        if self.tables.unpriced:
            log.warning("deployments without a price: their requests are recorded with cost_usd null",
                        extra={"deployments": self.tables.unpriced})
        if state is not self.state:
            await self._use_state(state)
        if self.audit is None or self.audit.config != config.governance.audit:
            old, self.audit = self.audit, AuditLog(config.governance.audit, self.metrics, self.client)
            await self.audit.start()
            if old is not None:
                self._spawn(old.close())

    async def _use_state(self, state: StateBackend) -> None:
        old_created, old_ledger, old_client = self.created, self.ledger, self.client
        self.state = state
        self.client = None
        if state.redis is not None:
            import redis.asyncio as aioredis

            pool = aioredis.BlockingConnectionPool.from_url(state.config.url, max_connections=32, timeout=5,
                                                            socket_timeout=5, socket_connect_timeout=2)
            self.client = aioredis.Redis.from_pool(pool)
        old_bus, self.bus = self.bus, Bus(state, self.client) if self.client is not None else None
        self.limiter = Limiter(state)
        self.created = CreatedKeys(state, self.keys, self.client, self.bus)
        self.ledger = SpendLedger(state, self.client, self.bus)
        if old_created is not None:
            self.created.local = old_created.local
        if old_bus is not None:
            await old_bus.close()
        if old_ledger is not None:
            await old_ledger.close()
        if old_client is not None:
            await old_client.aclose()
        if self.audit is not None:  # a redis_stream sink follows the new backend
            old, self.audit = self.audit, AuditLog(self.audit.config, self.metrics, self.client)
            await self.audit.start()
            self._spawn(old.close())
        if self.bus is not None:
            await self.bus.start()
        await self.ledger.start()

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        if self.bus is not None:
            await self.bus.close()
        if self.ledger is not None:
            await self.ledger.close()
        if self.audit is not None:
            await self.audit.close()
        if self.client is not None:
            await self.client.aclose()

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("governance background step failed", exc_info=task.exception())

    # -- the recorder sink ------------------------------------------------------------------------

    def record(self, ex: Exchange) -> None:
        ticket = ex.ticket
        if ticket is not None:
            ticket.price()
            if not ticket.settled:
                self._spawn(ticket.settle())
        if ex.attempts:
            usage = ex.usage
            model = ex.model if ex.model_known and ex.model else "unknown"
            provider = ex.provider or "none"
            nanos = ticket.cost_nanos if ticket is not None and ticket.cost_nanos else 0
            day = time.strftime("%Y-%m-%d", time.gmtime(ex.ts))
            self.ledger.add(day, (ex.key_name or "", ex.team or "", model, provider), nanos,
                            usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)
            if nanos:
                self.metrics.spend.labels(model, provider, ex.team or "none").inc(nanos / 1_000_000_000)
        if self.audit:
            bodies = None
            if ticket is not None and ticket.request_body is not None:
                bodies = {"request_body": ticket.request_body, "response_body": ticket.response_body}
            self.audit.submit(audit_record(ex, bodies))
