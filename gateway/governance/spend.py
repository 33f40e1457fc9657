"""The spend ledger: nano-USD, requests and tokens per key, team, model, provider and UTC day.

Requests add to an in-memory batch (no I/O on the request path); a background task flushes it every
``FLUSH_SECONDS`` to the state backend: with Redis, one Lua call applies the batch's ``HINCRBY``s to
the day hashes ``<prefix>spend:<YYYY-MM-DD>`` (kept ``KEEP_DAYS``), shared by every replica. A batch
carries an id and is applied at most once (its marker is kept an hour), so a flush whose answer was
lost is retried unchanged without counting twice; nothing is lost while Redis is away. ``report`` aggregates
a range of days by one dimension for ``GET /admin/spend``, after asking every replica to flush (over
the governance bus), so it includes requests that ended a moment ago on any replica.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

import orjson

from gateway.governance.bus import Bus
from gateway.governance.cost import usd
from gateway.state import StateBackend

log = logging.getLogger("switchyard.governance")

FLUSH_SECONDS = 0.25
KEEP_DAYS = 400
GROUPS = ("key", "team", "model", "provider")
METRICS = ("cost", "requests", "prompt_tokens", "completion_tokens")
Combo = tuple[str, str, str, str]  # key, team, model, provider ("" when none)


SPEND_WRITE = r"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 3600) then return 0 end
for k = 1, #ARGV - 1, 3 do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[k])], ARGV[k + 1], ARGV[k + 2])
end
for k = 2, #KEYS do redis.call('EXPIRE', KEYS[k], ARGV[#ARGV]) end
return 1
"""


class SpendLedger:
    def __init__(self, state: StateBackend, client: Any = None, bus: Bus | None = None) -> None:
        self.state = state
        self.client = client  # a Redis client for background work (longer time-outs), or None
        self.bus = bus
        if bus is not None:
            bus.handle("spend_flush", self._flush_requested)
        self.pending: dict[str, dict[Combo, list[int]]] = {}  # day -> combo -> METRICS
        self.inflight: tuple[str, dict[str, dict[Combo, list[int]]]] | None = None  # (batch id, batch) being written
        self.local: dict[str, dict[Combo, list[int]]] = {}  # the memory backend's store
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._script = client.register_script(SPEND_WRITE) if client is not None else None

    def add(self, day: str, combo: Combo, cost_nanos: int, prompt: int, completion: int) -> None:
        row = self.pending.setdefault(day, {}).setdefault(combo, [0, 0, 0, 0])
        row[0] += cost_nanos
        row[1] += 1
        row[2] += prompt
        row[3] += completion

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), timeout=2)
        except Exception:
            log.error("spend not flushed at shutdown", extra={"days": sorted(self.pending)})

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the batch is kept and retried as it is (idempotent by batch id)
                if not failing:
                    log.error("spend ledger flush failed; retrying", extra={"error": type(exc).__name__})
                failing = True

    async def flush(self) -> None:
        async with self._lock:
            while True:
                if self.inflight is None:
                    if not self.pending:
                        return
                    self.inflight, self.pending = (uuid.uuid4().hex, self.pending), {}
                batch_id, batch = self.inflight
                if self._script is None:
                    _merge(self.local, batch)
                else:
                    await self._write(batch_id, batch)
                self.inflight = None

    async def _write(self, batch_id: str, batch: dict[str, dict[Combo, list[int]]]) -> None:
        keys = [self.state.key("spend", "batch", batch_id)]
        args: list[Any] = []
        for day, rows in batch.items():
            keys.append(self.state.key("spend", day))
            for combo, values in rows.items():
                for metric, value in zip(METRICS, values):
                    if value:
                        args += [len(keys), _field(metric, combo), value]
        args.append(KEEP_DAYS * 86400)
        await self._script(keys=keys, args=args)

    async def _read_day(self, day: str) -> dict[Combo, list[int]]:
        if self.client is None:
            return {combo: list(values) for combo, values in self.local.get(day, {}).items()}
        raw = await self.client.hgetall(self.state.key("spend", day))
        rows: dict[Combo, list[int]] = {}
        for field, value in raw.items():
            metric, *combo = orjson.loads(field)
            rows.setdefault(tuple(combo), [0, 0, 0, 0])[METRICS.index(metric)] += int(value)  # type: ignore[arg-type]
        return rows

    async def _flush_requested(self, _: Any) -> None:
        await self.flush()

    async def report(self, group_by: str, start: dt.date, end: dt.date) -> dict[str, Any]:
        """Every replica flushes first (over the bus), so the report includes requests that just ended."""
        if self.bus is not None:
            await self.bus.broadcast("spend_flush", None)
        await self.flush()
        index = GROUPS.index(group_by)
        totals: dict[str, list[int]] = {}
        day = start
        while day <= end:
            for combo, values in (await self._read_day(day.isoformat())).items():
                row = totals.setdefault(combo[index], [0, 0, 0, 0])
                for i, value in enumerate(values):
                    row[i] += value
            day += dt.timedelta(days=1)
        data = [{group_by: name or None, "spend_usd": usd(v[0]), "requests": v[1], "prompt_tokens": v[2],
                 "completion_tokens": v[3], "spend_nano_usd": v[0]}
                for name, v in sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))]
        total = sum(v[0] for v in totals.values())
        return {"group_by": group_by, "from": start.isoformat(), "to": end.isoformat(), "data": data,
                "total_usd": usd(total), "total_nano_usd": total}


def _field(metric: str, combo: Combo) -> bytes:
    return orjson.dumps([metric, *combo])


def _merge(into: dict[str, dict[Combo, list[int]]], batch: dict[str, dict[Combo, list[int]]]) -> None:
    for day, rows in batch.items():
        target = into.setdefault(day, {})
        for combo, values in rows.items():
            row = target.setdefault(combo, [0, 0, 0, 0])
            for i, value in enumerate(values):
                row[i] += value
