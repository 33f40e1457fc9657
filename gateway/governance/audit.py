"""The audit trail: one JSON record per ``/v1`` request, written after it ends, off the request path.

``AuditLog.submit`` (called from the recorder, once per exchange) only appends to each sink's
buffer; a writer task per sink takes batches and writes them (file writes in a worker thread). A sink
that fails keeps its batch, backs off and retries; when its buffer is full the oldest records are
dropped, counted in ``switchyard_audit_dropped_total{sink}`` and logged, never silently. A failing
sink never fails or delays a request.

A record holds ``request_id, ts, endpoint, key_name, team, model, stream, attempts, status,
error_code, usage, cost_usd, policy, duration_ms`` (plus ``request_body`` / ``response_body`` when
``include_bodies`` is on: the body as forwarded, after redaction). It never holds a key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from typing import Any

import orjson

from gateway.exchange import Exchange
from gateway.governance.audit_sinks import FileSink, Match, RedisStreamSink
from gateway.governance.config import AuditConfig, SinkSpec
from gateway.metrics import Metrics

log = logging.getLogger("switchyard.audit")

BATCH = 500
MAX_BACKOFF = 5.0
STOP_SLACK_SECONDS = 5.0  # records are written in the order requests end, give or take a little


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str) -> float:
    text = value.strip().replace("Z", "+00:00").replace(" ", "+")
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def audit_record(ex: Exchange, bodies: dict[str, Any] | None = None) -> dict[str, Any]:
    usage = ex.usage
    record: dict[str, Any] = {
        "request_id": ex.request_id,
        "ts": iso(ex.ts),
        "endpoint": ex.endpoint,
        "key_name": ex.key_name,
        "team": ex.team,
        "model": ex.model,
        "stream": ex.stream,
        "attempts": [{"deployment": a.deployment, "provider": a.provider, "status": a.status,
                      "latency_ms": a.latency_ms} for a in ex.attempts],
        "status": ex.status,
        "error_code": ex.error_code,
        "usage": None if usage is None else {
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "cached_tokens": usage.cached_tokens, "estimated": usage.estimated},
        "cost_usd": ex.cost_usd,
        "policy": list(ex.policy),
        "duration_ms": round(ex.duration_ms(), 3),
    }
    if bodies:
        record.update(bodies)
    return record


class SinkWriter:
    """One sink's buffer and writer task."""

    def __init__(self, sink: FileSink | RedisStreamSink, capacity: int, metrics: Metrics) -> None:
        self.sink = sink
        self.capacity = capacity
        self.metrics = metrics
        self.buffer: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task | None = None
        self.dropped = 0
        self.writing = 0  # the records at the front being written now (never dropped)

    def put(self, line: bytes) -> None:
        if len(self.buffer) >= self.capacity:  # drop the oldest record not being written right now
            if len(self.buffer) > self.writing:
                del self.buffer[self.writing]
                self.buffer.append(line)
            self._dropped()
        else:
            self.buffer.append(line)
        self.idle.clear()
        self.wake.set()

    def _dropped(self) -> None:
        self.dropped += 1
        self.metrics.audit_dropped.labels(self.sink.name).inc()
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.error("audit buffer full: dropping the oldest records", extra={"sink": self.sink.name,
                                                                              "dropped": self.dropped})

    async def run(self) -> None:
        backoff = 0.05
        while True:
            if not self.buffer:
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                continue
            batch = [self.buffer[i] for i in range(min(BATCH, len(self.buffer)))]
            self.writing = len(batch)
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.writing = 0
                log.error("audit sink failed; will retry", extra={"sink": self.sink.name, "error": type(exc).__name__,
                                                                  "buffered": len(self.buffer)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.05
            for _ in range(len(batch)):
                self.buffer.popleft()
            self.writing = 0

    async def _write(self, batch: list[bytes]) -> None:
        if isinstance(self.sink, FileSink):
            await asyncio.to_thread(self.sink.write, batch)
        else:
            await self.sink.write(batch)


class AuditLog:
    def __init__(self, config: AuditConfig, metrics: Metrics, client: Any = None) -> None:
        self.config = config
        self.writers = [SinkWriter(_sink(spec, client), spec.buffer, metrics) for spec in config.sinks]

    def __bool__(self) -> bool:
        return bool(self.writers)

    async def start(self) -> None:
        for writer in self.writers:
            writer.task = asyncio.create_task(writer.run())

    def submit(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, default=str) + b"\n"
        for writer in self.writers:
            writer.put(line)

    async def drain(self, timeout: float = 2.0) -> bool:
        try:
            await asyncio.wait_for(asyncio.gather(*(w.idle.wait() for w in self.writers)), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, timeout: float = 5.0) -> None:
        if not await self.drain(timeout):
            lost = sum(len(w.buffer) for w in self.writers)
            for writer in self.writers:
                writer.metrics.audit_dropped.labels(writer.sink.name).inc(len(writer.buffer))
            log.error("audit records not written at shutdown", extra={"records": lost})
        for writer in self.writers:
            if writer.task is not None:
                writer.task.cancel()
                await asyncio.gather(writer.task, return_exceptions=True)
            if isinstance(writer.sink, FileSink):
                writer.sink.close()

    async def read(self, key: str | None, model: str | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, from the first sink that can read back (a Redis stream is shared by replicas)."""
        await self.drain(1.0)
        sinks = sorted((w.sink for w in self.writers), key=lambda s: 0 if isinstance(s, RedisStreamSink) else 1)
        sink = sinks[0]

        def match(record: dict[str, Any]) -> bool:
            if key is not None and record.get("key_name") != key:
                return False
            if model is not None and record.get("model") != model:
                return False
            return since is None or parse_iso(record["ts"]) >= since

        def stop(record: dict[str, Any]) -> bool:
            if since is None:
                return False
            ended = parse_iso(record["ts"]) + (record.get("duration_ms") or 0) / 1000
            return ended < since - STOP_SLACK_SECONDS

        if isinstance(sink, RedisStreamSink):
            return await sink.read(match, limit, stop)
        return await asyncio.to_thread(sink.read, match, limit, stop)


def _sink(spec: SinkSpec, client: Any) -> FileSink | RedisStreamSink:
    if spec.type == "redis_stream":
        return RedisStreamSink(spec, client)
    return FileSink(spec)


__all__ = ["AuditLog", "Match", "audit_record", "iso", "parse_iso"]
