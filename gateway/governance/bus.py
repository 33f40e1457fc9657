"""A small broadcast bus between replicas over Redis pub/sub, with acknowledgements.

``Bus.broadcast(topic, payload)`` publishes on ``<prefix>bus:<topic>`` and waits (up to
``ACK_TIMEOUT``) until as many replicas as Redis reported subscribers have run their handler and
acknowledged in ``<prefix>bus:ack:<id>``: when it returns, every connected replica has acted. Each
replica holds one subscription for all topics (``listen``), reconnecting with back-off; ``on_connect``
callbacks run after every (re)subscription, so a replica that missed messages catches up, and
``on_idle`` callbacks run about every ``IDLE_SECONDS`` as a safety net.

It runs on governance's background Redis client (longer time-outs than the request path's).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.state import StateBackend

log = logging.getLogger("switchyard.governance")

ACK_TIMEOUT = 2.0
IDLE_SECONDS = 1.0
Handler = Callable[[Any], Awaitable[None]]


class Bus:
    def __init__(self, state: StateBackend, client: Any) -> None:
        self.state = state
        self.client = client
        self.replica = uuid.uuid4().hex
        self.handlers: dict[str, Handler] = {}
        self.on_connect: list[Callable[[], Awaitable[None]]] = []
        self.on_idle: list[Callable[[], Awaitable[None]]] = []
        self.connected = asyncio.Event()
        self._task: asyncio.Task | None = None

    def _channel(self, topic: str) -> str:
        return self.state.key("bus", topic)

    def handle(self, topic: str, handler: Handler) -> None:
        self.handlers[topic] = handler

    async def start(self, wait: float = 2.0) -> None:
        self._task = asyncio.create_task(self._listen())
        try:  # start with the shared state in hand when Redis is there; keep trying in the background
            await asyncio.wait_for(self.connected.wait(), timeout=wait)
        except TimeoutError:
            log.warning("governance bus not connected at start-up: Redis did not answer; retrying")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def broadcast(self, topic: str, payload: Any) -> int:
        """Publish to every replica and wait for their acknowledgements; answers how many acknowledged."""
        message_id = uuid.uuid4().hex
        listeners = await self.client.publish(self._channel(topic), orjson.dumps({"id": message_id, "p": payload}))
        ack_key = self.state.key("bus", "ack", message_id)
        deadline = time.monotonic() + ACK_TIMEOUT
        acked = 0
        while True:
            acked = int(await self.client.scard(ack_key))
            if acked >= listeners or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.005)
        if acked < listeners:
            log.warning("not every replica acknowledged in time", extra={"topic": topic, "acknowledged": acked,
                                                                         "listeners": listeners})
        return acked

    async def _ack(self, message_id: str) -> None:
        key = self.state.key("bus", "ack", message_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.sadd(key, self.replica)
            pipe.expire(key, 60)
            await pipe.execute()

    async def _dispatch(self, channel: bytes, data: bytes) -> None:
        topic = channel.decode().removeprefix(self.state.key("bus", ""))
        handler = self.handlers.get(topic)
        message = orjson.loads(data)
        if handler is not None:
            try:
                await handler(message["p"])
            except Exception:
                log.exception("governance bus handler failed", extra={"topic": topic})
                return  # unacknowledged: the sender learns that this replica did not act
        await self._ack(message["id"])

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*(self._channel(topic) for topic in self.handlers))
                for callback in self.on_connect:  # after subscribing: nothing can fall in between
                    await callback()
                self.connected.set()
                delay = 0.1
                idle_at = time.monotonic() + IDLE_SECONDS
                while True:
                    message = await pubsub.get_message(timeout=IDLE_SECONDS)
                    if message is not None and message.get("type") == "message":
                        await self._dispatch(message["channel"], message["data"])
                    if time.monotonic() >= idle_at:
                        idle_at = time.monotonic() + IDLE_SECONDS
                        for callback in self.on_idle:
                            await callback()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected.is_set():
                    log.error("governance bus connection lost; retrying", extra={"error": type(exc).__name__})
                self.connected.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
