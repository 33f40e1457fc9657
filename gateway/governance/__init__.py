"""Governance: virtual keys, rate limits, budgets, cost, spend, policies and the audit trail.

A request's governance, top to bottom (``hooks.GovernanceHooks``):

1. authentication: ``keys.KeyStore.lookup`` finds the virtual key by its SHA-256 (no I/O: YAML keys
   and created keys are both held in memory; created keys are kept in step across replicas by
   ``sync.CreatedKeys`` over the replica bus, ``bus.Bus``);
2. model access (``models`` globs), then ``policies.PolicySet`` (deny / redact), then the key's
   ``max_tokens`` cap; nothing refused here is counted against any limit;
3. ``limiter.Limiter.admit``: budgets and rpm/tpm of the key and its team, checked and charged in one
   Lua call (exact across replicas; fail open to per-replica windows when Redis is away);
4. routing claims each deployment's rpm/tpm (``Ticket.claim``): a deployment at its limit is skipped;
5. ``settle``: cost from the usage (``cost``), budget counters and token reservations trued up, the
   spend ledger (``spend.SpendLedger``) and one audit record (``audit.AuditLog``) per request.

``service.Governance`` holds it all (``gw.governance``); ``admission.GovernanceHooks`` is the app's
``gw.hooks``; ``admin`` adds the admin routes; ``config`` types the YAML sections. See docs/governance.md.

This package's ``__init__`` imports nothing so ``gateway.config`` can import ``governance.config``.
"""
