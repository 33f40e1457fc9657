"""The record of one client request as it moves through the gateway (metrics and audit read it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from providers.base import Usage


@dataclass(slots=True)
class Attempt:
    deployment: str
    provider: str
    status: int
    latency_ms: float
    outcome: str  # "success" | an error code | "timeout" | "connect_error"


@dataclass(slots=True)
class Exchange:
    request_id: str
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    model: str | None = None  # the model name the client sent (a configured group, or as sent)
    model_known: bool = False
    stream: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    provider: str | None = None  # the provider that answered
    deployment: str | None = None
    status: int = 0
    error_code: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    key_name: str | None = None
    team: str | None = None
    policy: list[dict[str, Any]] = field(default_factory=list)
    disconnected: bool = False
    first_byte_at: float | None = None  # perf_counter time the first stream chunk went to the client
    extra_headers: dict[str, str] = field(default_factory=dict)
    ticket: Any = None  # governance's per-request state (limits to settle, deployment claims)

    @property
    def created(self) -> int:
        return int(self.ts)

    def headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id, **self.extra_headers}
        if self.provider is not None:
            headers["x-switchyard-provider"] = self.provider
        if self.deployment is not None:
            headers["x-switchyard-deployment"] = self.deployment
        if self.attempts:
            headers["x-switchyard-attempts"] = str(len(self.attempts))
        return headers

    def duration_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
