"""Prometheus metrics, prefix ``switchyard_``.

One ``Metrics`` object per process holds every collector in its own registry (no module-level
mutable state). Under ``--workers N`` the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker
starts and ``/metrics`` aggregates every worker's files (prometheus-client's multiprocess mode).
Label values are bounded: ``model`` is a configured model name (unknown names are counted as
``unknown``), ``provider`` and ``deployment`` come from the YAML.
"""

from __future__ import annotations

import os
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _CachedLabels:
    """``labels(*values)`` through a dict: prometheus-client's own takes a lock and converts every value
    on each call (~2 us, several times a request). The label values used here are bounded (see above),
    so the dict is too; removing or clearing children empties it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._children: dict[tuple, Any] = {}

    def labels(self, *values: Any, **by_name: Any) -> Any:
        if by_name:
            return super().labels(*values, **by_name)
        try:
            return self._children[values]
        except KeyError:
            child = self._children[values] = super().labels(*values)
            return child

    def remove(self, *values: Any) -> None:
        self._children.clear()
        super().remove(*values)

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        self._children.clear()
        super().remove_by_labels(labels)

    def clear(self) -> None:
        self._children.clear()
        super().clear()


class Counter(_CachedLabels, prometheus_client.Counter):
    pass


class Gauge(_CachedLabels, prometheus_client.Gauge):
    pass


class Histogram(_CachedLabels, prometheus_client.Histogram):
    pass


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("switchyard_requests_total", "Requests answered, by model, provider and status",
                                ["model", "provider", "status"], registry=r)
        self.request_duration = Histogram("switchyard_request_duration_seconds", "Whole request time in the gateway",
                                          ["model", "provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_duration = Histogram("switchyard_upstream_duration_seconds",
                                           "Time from sending upstream to the upstream's first byte",
                                           ["provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("switchyard_time_to_first_token_seconds", "Time from request to the first streamed chunk",
                              ["model", "provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("switchyard_tokens_total", "Tokens reported by upstreams", ["model", "type"], registry=r)
        self.in_flight = Gauge("switchyard_requests_in_flight", "Requests being served", registry=r,
                               multiprocess_mode="livesum")
        self.attempts = Counter("switchyard_attempts_total", "Upstream attempts by deployment and outcome",
                                ["deployment", "outcome"], registry=r)
        self.fallbacks = Counter("switchyard_fallbacks_total", "Fallbacks to another model group", ["reason"], registry=r)
        self.circuit_state = Gauge("switchyard_circuit_state", "Circuit state: 0 closed, 1 half-open, 2 open",
                                   ["deployment"], registry=r, multiprocess_mode="max")
        self.redis_up = Gauge("switchyard_redis_up", "1 when the Redis state backend answers", registry=r,
                              multiprocess_mode="min")
        self.spend = Counter("switchyard_spend_usd_total", "Spend in USD", ["model", "provider", "team"], registry=r)
        self.ratelimited = Counter("switchyard_ratelimited_total", "Requests refused by a limit", ["scope"], registry=r)
        self.audit_dropped = Counter("switchyard_audit_dropped_total", "Audit records that could not be written",
                                     ["sink"], registry=r)
        self.state_fail_open = Counter("switchyard_state_fail_open_total",
                                       "State backend calls that failed and were served from local state",
                                       ["operation"], registry=r)
        self.state_slow_calls = Counter("switchyard_state_slow_calls_total",
                                        "State backend calls that exceeded their time-out (each also failed open)",
                                        ["operation"], registry=r)

    def render(self) -> bytes:
        directory = multiprocess_dir()
        if directory:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)
