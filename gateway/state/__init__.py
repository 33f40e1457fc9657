"""Shared state: where breaker state, rate-limit windows, spend counters and created keys live.

``build_state(config.state, metrics)`` gives a ``StateBackend``: ``MemoryState`` (one process) or
``RedisState`` (every replica shares it). Features keep their logic in two small halves: a local
(in-process) implementation and a Redis one (Lua scripts reading Redis's own ``TIME``), and call
Redis through ``RedisState.run`` so a slow or down Redis costs at most ``timeout_ms`` and falls back
to the local half (fail open), counted in ``switchyard_state_fail_open_total``. One slow call fails
open alone; Redis is marked down (logged once) on a connection error or when a confirming PING fails.
"""

from gateway.state.backend import MemoryState, RedisState, StateBackend, build_state

__all__ = ["MemoryState", "RedisState", "StateBackend", "build_state"]
