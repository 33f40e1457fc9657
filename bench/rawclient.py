"""A deliberately minimal HTTP/1.1 client (asyncio protocol + httptools), for one measurement only:
how much of a proxy's cost is its HTTP client (``python -m bench.floor --client raw``).

Plain HTTP to one host, keep-alive, Content-Length or chunked answers; no TLS, no timeouts, no
redirects, no decompression, no limits. It is NOT a candidate for the gateway as it stands; see
docs/benchmark.md for what it shows.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

import httptools


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.head: asyncio.Future | None = None
        self.chunks: deque[bytes] = deque()
        self.waiter: asyncio.Future | None = None
        self.done = False
        self.lost = False
        self.status = 0
        self.content_type = b""
        self.netloc = ""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.lost = True
        self.done = True
        for future in (self.head, self.waiter):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("upstream closed the connection"))

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def request(self, raw: bytes) -> None:
        self.done, self.status, self.content_type = False, 0, b""
        self.chunks.clear()
        self.head = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        await self.head

    async def iter_chunks(self):
        while True:
            while self.chunks:
                yield self.chunks.popleft()
            if self.done:
                return
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


class RawClient:
    def __init__(self) -> None:
        self.idle: dict[str, deque[_Connection]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> _Connection:
        parts = urlsplit(url)
        idle = self.idle.setdefault(parts.netloc, deque())
        conn = None
        while idle:
            candidate = idle.pop()
            if not candidate.lost:
                conn = candidate
                break
        if conn is None:
            _, conn = await asyncio.get_running_loop().create_connection(_Connection, parts.hostname, parts.port)
            conn.netloc = parts.netloc
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        raw = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        await conn.request(raw)
        return conn

    def release(self, conn: _Connection) -> None:
        if conn.done and not conn.lost:
            self.idle[conn.netloc].append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    async def close(self) -> None:
        for idle in self.idle.values():
            while idle:
                conn = idle.pop()
                if conn.transport is not None:
                    conn.transport.close()
