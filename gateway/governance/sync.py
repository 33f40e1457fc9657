"""Keys created through the admin API: stored in the state backend, mirrored in every replica.

With Redis, the keys live in one hash (``<prefix>keys``: name -> JSON record, never the plaintext key)
and a version counter (``<prefix>keys:version``). Each change bumps the version and is broadcast on the
governance bus (``bus.Bus``): every replica reloads the hash when it hears a newer version and
acknowledges, and the admin call that made the change returns only once as many replicas acknowledged
as Redis reported subscribers. So when ``DELETE /admin/keys/{name}`` answers, every replica that was
listening has already stopped accepting the key. A replica re-reads the hash whenever it (re)subscribes
and compares versions about every second as well. The request path never reads Redis for a key.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from gateway.config_reader import Section
from gateway.errors import Conflict, NotFound, Overloaded
from gateway.governance.bus import Bus
from gateway.governance.config import Budget, KeySpec, key_spec
from gateway.governance.keys import KeyStore
from gateway.state import StateBackend

log = logging.getLogger("switchyard.governance")


def spec_to_record(spec: KeySpec) -> bytes:
    return orjson.dumps({**spec.public(), "key_sha256": spec.key_sha256})


def spec_from_record(raw: bytes | str) -> KeySpec | None:
    data = orjson.loads(raw)
    errors: list[str] = []
    data.pop("source", None)
    created_at = data.pop("created_at", None)
    if data.get("budget") is None:
        data.pop("budget", None)
    spec = key_spec(Section(data, "key", errors), source="admin", created_at=created_at)
    return spec if not errors else None


class CreatedKeys:
    def __init__(self, state: StateBackend, index: KeyStore, client: Any = None, bus: Bus | None = None) -> None:
        self.state = state
        self.index = index
        self.client = client  # a Redis client for background work (longer time-outs), or None
        self.bus = bus
        self.version = 0
        self.local: dict[str, KeySpec] = {}  # the memory backend's store
        self._reload_lock = asyncio.Lock()
        if bus is not None:
            bus.handle("keys", self._changed)
            bus.on_connect.append(self.reload)
            bus.on_idle.append(self._check_version)

    @property
    def shared(self) -> bool:
        return self.client is not None

    def _k(self, *parts: str) -> str:
        return self.state.key("keys", *parts)

    # -- keeping the mirror current ---------------------------------------------------------------

    async def reload(self) -> None:
        async with self._reload_lock:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(self._k("version"))
                pipe.hgetall(self._k())
                version, records = await pipe.execute()
            specs = [s for s in (spec_from_record(v) for v in records.values()) if s is not None]
            self.index.replace_created(specs)
            self.version = int(version or 0)

    async def _changed(self, version: int) -> None:
        if version > self.version:
            await self.reload()

    async def _check_version(self) -> None:
        if int(await self.client.get(self._k("version")) or 0) != self.version:
            await self.reload()

    # -- admin operations -------------------------------------------------------------------------

    async def create(self, spec: KeySpec) -> int:
        if not self.shared:
            if spec.name in self.local:
                raise Conflict(f"a key named '{spec.name}' already exists")
            self.local[spec.name] = spec
            self.index.replace_created(self.local.values())
            return 1
        added = await self._admin_call(self.client.hsetnx(self._k(), spec.name, spec_to_record(spec)))
        if not added:
            raise Conflict(f"a key named '{spec.name}' already exists")
        return await self._publish()

    async def replace(self, name: str, update) -> tuple[KeySpec, int]:
        """Apply ``update(spec) -> spec`` to an existing created key (rotation)."""
        if not self.shared:
            if name not in self.local:
                raise NotFound(f"no key named '{name}'", param="name")
            spec = self.local[name] = update(self.local[name])
            self.index.replace_created(self.local.values())
            return spec, 1
        raw = await self._admin_call(self.client.hget(self._k(), name))
        current = spec_from_record(raw) if raw else None
        if current is None:
            raise NotFound(f"no key named '{name}'", param="name")
        spec = update(current)
        await self._admin_call(self.client.hset(self._k(), name, spec_to_record(spec)))
        return spec, await self._publish()

    async def delete(self, name: str) -> int:
        if not self.shared:
            if self.local.pop(name, None) is None:
                raise NotFound(f"no key named '{name}'", param="name")
            self.index.replace_created(self.local.values())
            return 1
        if not await self._admin_call(self.client.hdel(self._k(), name)):
            raise NotFound(f"no key named '{name}'", param="name")
        return await self._publish()

    async def _publish(self) -> int:
        """Bump the version, apply the change here, and wait until every replica has applied it."""
        version = await self._admin_call(self.client.incr(self._k("version")))
        await self._admin_call(self.reload())
        return await self._admin_call(self.bus.broadcast("keys", version))

    @staticmethod
    async def _admin_call(awaitable):
        try:
            return await awaitable
        except Exception as exc:
            raise Overloaded(f"the state backend is unavailable, keys cannot be changed now ({type(exc).__name__})",
                             code="state_unavailable") from None


def rotated(spec: KeySpec, digest: str) -> KeySpec:
    return KeySpec(name=spec.name, key_sha256=digest, team=spec.team, models=spec.models, rpm=spec.rpm,
                   tpm=spec.tpm, budget=spec.budget if isinstance(spec.budget, Budget) else None,
                   max_tokens=spec.max_tokens, source="admin", created_at=spec.created_at)
