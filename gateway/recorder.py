"""Records each finished exchange exactly once: metrics, the access log line, and any extra sinks
(audit, spend) that features register. Called from one ``finally`` per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.exchange import Exchange
from gateway.logs import AccessLog
from gateway.metrics import Metrics

log = logging.getLogger("switchyard.access")

Sink = Callable[[Exchange], None]


class Recorder:
    def __init__(self, metrics: Metrics, log_requests: bool = True) -> None:
        self.metrics = metrics
        self.log_requests = log_requests
        self.access = AccessLog()
        self.sinks: list[Sink] = []

    def finish(self, ex: Exchange) -> None:
        m = self.metrics
        model = ex.model if ex.model_known else "unknown"
        provider = ex.provider or "none"
        m.requests.labels(model, provider, str(ex.status)).inc()
        m.request_duration.labels(model, provider).observe(time.perf_counter() - ex.started)
        if ex.first_byte_at is not None:
            m.ttft.labels(model, provider).observe(ex.first_byte_at - ex.started)
        usage = ex.usage
        if usage is not None:
            if usage.prompt_tokens:
                m.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
            if usage.completion_tokens:
                m.tokens.labels(model, "completion").inc(usage.completion_tokens)
        for sink in self.sinks:
            try:
                sink(ex)
            except Exception:  # a sink never fails the request; each sink counts its own drops
                log.exception("record sink failed", extra={"request_id": ex.request_id})
        if self.log_requests:
            self.access.write({
                "request_id": ex.request_id, "endpoint": ex.endpoint, "model": ex.model, "stream": ex.stream,
                "status": ex.status, "error_code": ex.error_code, "provider": ex.provider,
                "deployment": ex.deployment, "attempts": len(ex.attempts),
                "duration_ms": round(ex.duration_ms(), 2),
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else None,
            })
