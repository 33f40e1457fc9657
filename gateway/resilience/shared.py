"""Circuit breakers shared by every replica through Redis, kept off the request path.

Each replica keeps a ``View`` of every deployment's shared breaker in memory; requests read only
that view. Redis is touched by background work and by rare events, never by an ordinary request:

- every ``REFRESH_SECONDS`` one ``SNAPSHOT`` script call reads all deployments' state (and Redis's
  clock), so a replica learns of another replica's verdict within that time;
- outcomes are counted in memory and written by one ``RECORD`` call per batch, every
  ``FLUSH_SECONDS``, or at once (off the response path) after a failure; Redis decides whether the
  fleet's counts open the circuit, and the reply updates this replica's view;
- only a half-open circuit costs a request a round trip: ``ACQUIRE_PROBE`` hands the probe lease to
  exactly one caller across the fleet; the others learn until when it is held and stop asking.

When Redis is down (``RedisState`` marks it: a connection error, or a time-out its PING confirms) the
owner (``Circuits``) judges on local state, and this module resynchronises on the way back. A single
call that fails while Redis stays up changes nothing but that call (its write is handed over later).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.config import Deployment
from gateway.resilience import lua
from gateway.state.backend import StateBackend

log = logging.getLogger("switchyard.circuit")

REFRESH_SECONDS = 0.25
FLUSH_SECONDS = 0.1
LEASE_CAP_SECONDS = 60.0
# background calls (snapshot, batches, verdicts) are off the request path: they may wait longer than
# state.timeout_ms, so a busy event loop's own lag does not pass for a slow Redis
BACKGROUND_TIMEOUT_MS = 1000


@dataclass(slots=True)
class View:
    """This replica's copy of one deployment's shared breaker (times on the local monotonic clock)."""

    opened: bool = False
    open_until: float = 0.0
    busy_until: float = 0.0  # a probe lease held by someone, until then
    forced: str | None = None
    requests: int = 0
    failures: int = 0


@dataclass(slots=True)
class Pending:
    """Outcomes not yet written to Redis, in the shape ``RECORD`` takes."""

    ok: int = 0
    failed: int = 0
    trailing: int = 0  # failures since the last success
    had_success: bool = False

    def add(self, success: bool) -> None:
        if success:
            self.ok += 1
            self.trailing = 0
            self.had_success = True
        else:
            self.failed += 1
            self.trailing += 1


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def key_ttl_ms(d: Deployment) -> int:
    s = d.circuit_breaker
    return int((s.window_seconds + s.cooldown_seconds + LEASE_CAP_SECONDS + 60) * 1000)


class SharedCircuits:
    def __init__(self, state: StateBackend, clock: Callable[[], float],
                 deployments: Callable[[], dict[str, Deployment]]) -> None:
        self.state = state
        self.clock = clock
        self._deployments = deployments
        redis = state.redis
        self._record = redis.register_script(lua.RECORD)
        self._snapshot = redis.register_script(lua.SNAPSHOT)
        self._acquire = redis.register_script(lua.ACQUIRE_PROBE)
        self._result = redis.register_script(lua.PROBE_RESULT)
        self._trip = redis.register_script(lua.TRIP)
        self.views: dict[str, View] = {}
        self.pending: dict[str, Pending] = {}
        self.node = uuid.uuid4().hex[:12]
        self._seq = itertools.count(1)
        self._offset = 0.0  # Redis seconds minus local monotonic seconds
        self._writes: dict[str, int] = {}  # local view changes, so an older snapshot does not undo them
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.live = False  # Redis answered and the view is in sync; False: judge locally
        self.on_down: Callable[[], None] = lambda: None
        self.on_resync: Callable[[], Any] = lambda: None  # False: something was not handed over yet

    # -- keys and clocks ------------------------------------------------------------------------

    def hash_key(self, deployment_id: str) -> str:
        return self.state.key("cb", deployment_id)

    def force_key(self, deployment_id: str) -> str:
        return self.state.key("cb", deployment_id, "force")

    def _clock_from(self, redis_now_ms: Any) -> None:
        self._offset = int(redis_now_ms) / 1000 - self.clock()

    def local_time(self, redis_ms: Any) -> float:
        ms = int(redis_ms)
        return ms / 1000 - self._offset if ms else 0.0

    @property
    def active(self) -> bool:
        """Redis is up and in sync: the shared view rules. Notices a fall at once (on_down)."""
        if self.live and not self.state.up:
            self.live = False
            self.on_down()
        return self.live

    def view(self, deployment_id: str) -> View:
        view = self.views.get(deployment_id)
        if view is None:
            view = self.views[deployment_id] = View()
        return view

    def _touched(self, deployment_id: str) -> None:
        self._writes[deployment_id] = self._writes.get(deployment_id, 0) + 1

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.sync()
        self._spawn(self._refresh_loop())
        self._spawn(self._flush_loop())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.live and self.pending:
            await self.flush()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.sync()
            except Exception:
                log.exception("circuit breaker refresh failed")

    async def _flush_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if self.pending and self.active:
                    await self.flush()
            except Exception:
                log.exception("circuit breaker flush failed")

    async def sync(self) -> None:
        """Refresh the view; first hand over what Redis has not taken (``on_resync``): verdicts of an
        outage, or a write that failed while Redis stayed up. Shared again only once all is handed over."""
        if not self.state.up:
            _ = self.active  # notices the fall (on_down)
            return
        if not self.live:
            self.pending.clear()  # counted while Redis was away: the local breakers judged those
        result = self.on_resync()
        if asyncio.iscoroutine(result):
            result = await result
        if not self.state.up or (result is False and not self.live):
            return
        if await self.snapshot():
            if not self.live:
                log.info("circuit breakers share state through Redis", extra={"node": self.node})
            self.live = True

    # -- Redis calls (each through state.run: timeout_ms at most, fail open) -------------------

    async def snapshot(self) -> bool:
        deployments = list(self._deployments().values())
        if not deployments:
            return True
        keys: list[str] = []
        for d in deployments:
            keys += [self.hash_key(d.id), self.force_key(d.id)]
        args = [int(d.circuit_breaker.window_seconds * 1000) for d in deployments]
        writes = dict(self._writes)
        reply = await self.state.run("circuit_snapshot", lambda r: self._snapshot(keys=keys, args=args, client=r),
                                     lambda: None, timeout_ms=BACKGROUND_TIMEOUT_MS)
        if reply is None:
            return False
        self._clock_from(reply[0])
        for i, d in enumerate(deployments):
            if self._writes.get(d.id, 0) != writes.get(d.id, 0):
                continue  # changed here while the snapshot was on its way
            st, ou, pl, forced, requests, failures = reply[1 + i * 6: 7 + i * 6]
            view = self.view(d.id)
            view.opened = _s(st) == "o"
            view.open_until = self.local_time(ou) if view.opened else 0.0
            view.busy_until = self.local_time(pl)
            view.forced = _s(forced) or None
            view.requests, view.failures = int(requests), int(failures)
        return True

    def add(self, deployment_id: str, success: bool) -> None:
        pending = self.pending.get(deployment_id)
        if pending is None:
            pending = self.pending[deployment_id] = Pending()
        pending.add(success)
        if not success:
            self._wake.set()

    async def flush(self) -> None:
        batch, self.pending = self.pending, {}
        deployments = self._deployments()
        keys: list[str] = []
        args: list[Any] = []
        ids: list[str] = []
        for dep_id, p in batch.items():
            d = deployments.get(dep_id)
            if d is None:
                continue
            s = d.circuit_breaker
            ids.append(dep_id)
            keys.append(self.hash_key(dep_id))
            args += [p.ok, p.failed, p.trailing, int(p.had_success), s.failure_threshold, s.failure_rate,
                     s.min_requests, int(s.window_seconds * 1000), int(s.cooldown_seconds * 1000), key_ttl_ms(d)]
        if not keys:
            return
        reply = await self.state.run("circuit_record", lambda r: self._record(keys=keys, args=args, client=r),
                                     lambda: None, timeout_ms=BACKGROUND_TIMEOUT_MS)
        if reply is None:
            return
        self._clock_from(reply[0])
        for i, dep_id in enumerate(ids):
            self._apply(dep_id, reply[1 + i * 2], reply[2 + i * 2])

    def _apply(self, deployment_id: str, st: Any, ou: Any) -> None:
        view = self.view(deployment_id)
        opened = _s(st) == "o"
        if opened != view.opened or (opened and self.local_time(ou) != view.open_until):
            self._touched(deployment_id)
        view.opened = opened
        view.open_until = self.local_time(ou) if opened else 0.0
        if not opened:
            view.busy_until = 0.0

    async def acquire_probe(self, d: Deployment, lease: float) -> tuple[bool, str | None]:
        """(may pass, probe token): the lease when this caller won it; (True, None) when the circuit
        turned out closed (or forced closed)."""
        token = f"{self.node}:{next(self._seq)}"
        keys = [self.hash_key(d.id), self.force_key(d.id)]
        args = [int(lease * 1000), token, key_ttl_ms(d)]
        reply = await self.state.run("circuit_probe", lambda r: self._acquire(keys=keys, args=args, client=r),
                                     lambda: None)
        if reply is None:
            return False, None
        self._clock_from(reply[0])
        verdict, until = _s(reply[1]), self.local_time(reply[2])
        view = self.view(d.id)
        self._touched(d.id)
        if verdict == "probe":
            view.busy_until = until
            return True, token
        if verdict == "busy":
            view.busy_until = until
        elif verdict == "open":
            view.opened, view.open_until = True, until
        elif verdict == "closed":
            view.opened, view.busy_until = False, 0.0
            return True, None
        elif verdict.startswith("forced:"):
            view.forced = verdict[7:]
            return view.forced == "closed", None
        return False, None

    def probe_result(self, d: Deployment, token: str, success: bool | None) -> None:
        """The probe's verdict: the view changes now, Redis in the background (off the response path)."""
        view = self.view(d.id)
        self._touched(d.id)
        view.busy_until = 0.0
        if success is True:
            view.opened, view.open_until = False, 0.0
        elif success is False:
            view.opened, view.open_until = True, self.clock() + d.circuit_breaker.cooldown_seconds
        verdict = "" if success is None else ("1" if success else "0")
        keys = [self.hash_key(d.id)]
        args = [token, verdict, int(d.circuit_breaker.cooldown_seconds * 1000), key_ttl_ms(d)]

        async def write() -> None:
            reply = await self.state.run("circuit_probe_result",
                                         lambda r: self._result(keys=keys, args=args, client=r), lambda: None,
                                         timeout_ms=BACKGROUND_TIMEOUT_MS)
            if reply is not None:
                self._clock_from(reply[0])
                self._apply(d.id, reply[1], reply[2])

        self._spawn(write())

    async def trip(self, d: Deployment, open_for: float) -> bool:
        keys = [self.hash_key(d.id)]
        args = [max(0, int(open_for * 1000)), key_ttl_ms(d)]
        reply = await self.state.run("circuit_trip", lambda r: self._trip(keys=keys, args=args, client=r),
                                     lambda: None, timeout_ms=BACKGROUND_TIMEOUT_MS)
        if reply is None:
            return False
        self._clock_from(reply[0])
        self._apply(d.id, reply[1], reply[2])
        return True

    async def force(self, deployment_id: str, state: str | None) -> bool:
        """Write an operator's forced state (None: auto). False when Redis did not take it."""
        key = self.force_key(deployment_id)

        async def remote(r) -> bool:
            if state is None:
                await r.delete(key)
            else:
                await r.set(key, state, ex=lua.FORCE_TTL_SECONDS)
            return True

        done = await self.state.run("circuit_force", remote, lambda: False, timeout_ms=BACKGROUND_TIMEOUT_MS)
        if done:
            self._touched(deployment_id)
            self.view(deployment_id).forced = state
        return bool(done)
