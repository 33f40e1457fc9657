"""HTTP/1.1 to upstreams: a keep-alive connection pool on asyncio, answers parsed by httptools (llhttp).

The connection layer under ``gateway.upstream``; nothing else imports it. It does what the gateway
needs and no more: plain HTTP and TLS (the system's trust store, SNI), keep-alive with a limit on
connections in use and an idle expiry, ``Content-Length``, chunked and close-delimited bodies,
gzip and deflate, and three time-outs: ``connect`` (also bounds waiting for a free connection),
``read`` (the longest silence while waiting for the upstream) and ``total``. HTTP forward proxies
(``gateway.http1_proxy``): CONNECT tunnels for https, absolute-form requests for http, decided once per
(scheme, host, port) and kept apart from direct connections in the pool. No redirects, cookies or HEAD
requests (the gateway never used them). It replaced aiohttp, which cost half of a request's CPU in the
gateway and ~0.3 ms of a stream's first token: see docs/benchmark.md.

Errors: ``ConnectError`` (with the OS error's name, or what went wrong with the proxy), ``ProtocolError``
(a malformed answer, or the connection lost before the answer ended) and the built-in ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httptools

from gateway.http1_proxy import Proxy, ProxyError, ProxyRules, open_tunnel

HIGH_WATER = 256 * 1024  # unread body bytes at which the socket stops being read
LOW_WATER = 64 * 1024
DEFAULT_HEADERS = (("accept", "Accept: */*\r\n"), ("accept-encoding", "Accept-Encoding: gzip, deflate\r\n"))
MAX_ROUTES = 1024  # proxy decisions kept per pool (one per upstream scheme, host and port)
_UNDECIDED = object()

# a pool key: (scheme, host, port), or (scheme, host, port, Proxy) for a connection through a proxy
Key = tuple


class ConnectError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProtocolError(Exception):
    pass


class Connection(asyncio.Protocol):
    """One keep-alive connection; it also holds the state of the answer being read on it."""

    def __init__(self, pool: Pool, key: Key) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.busy = True  # False while it waits in the pool
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._raw: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future | None = None
        self.paused = False
        self.decoder = None
        self.until_close = False

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        if self.head_done and self.until_close and not self.complete and self.error is None:
            self._finish_body()  # a close-delimited body ends here
        elif not self.complete and self.error is None:
            self.error = ProtocolError("the upstream closed the connection"
                                       + (" mid-answer" if self.head_done else " before answering"))
        self._wake()
        self.pool._lost(self)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # an idle connection has nothing to say (a server's 408 before it closes)
            self.lost = True
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(ProtocolError(f"malformed answer ({exc})"))
            return
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    # -- httptools callbacks -----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx: an interim answer, the real one follows
            self._raw = []
            return
        self.status = status
        self.headers = headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self._raw}
        self.keep_alive = self.parser.should_keep_alive()
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, by their header
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.until_close = "content-length" not in headers and not chunked and status not in (204, 304)
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:
                body = self.decoder.decompress(body)
            except zlib.error:
                self.fail(ProtocolError("the upstream sent a body that does not decompress"))
                return
        if body:
            self.body.append(body)
            self.buffered += len(body)
            self._wake()

    def on_message_complete(self) -> None:
        if self.head_done:
            self._finish_body()

    def _finish_body(self) -> None:
        if self.decoder is not None:
            tail = self.decoder.flush()
            if tail:
                self.body.append(tail)
                self.buffered += len(tail)
        self.complete = True
        self._wake()

    # -- the reading side --------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, read_timeout: float | None) -> None:
        """Until something happens on this connection, or ``read_timeout`` seconds of silence."""
        loop = self.pool.loop
        self.waiter = waiter = loop.create_future()
        timer = loop.call_later(read_timeout, _expire, waiter) if read_timeout else None
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    def take(self) -> bytes:
        data = self.body.popleft()
        self.buffered -= len(data)
        if self.paused and self.buffered < LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


class _ProxiedConnection(Connection):
    """A connection to a forward proxy carrying absolute-form requests: its 407 is the proxy's, not the vendor's."""

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() == 407:
            self.fail(ConnectError("proxy answered 407"))
            return
        super().on_headers_complete()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """An answer whose head has arrived; the body is read with ``read`` or ``chunks``.

    Once the body has been read to its end the connection goes back to the pool (when the upstream
    keeps it alive); ``close`` before that drops the connection, so the upstream stops sending.
    """

    __slots__ = ("_conn", "status", "headers", "_read_timeout", "_done", "_deadline")

    def __init__(self, conn: Connection, read_timeout: float | None, deadline: asyncio.TimerHandle | None) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while True:
                if conn.body:
                    yield conn.take()
                    continue
                if conn.error is not None:
                    raise conn.error
                if conn.complete:
                    break
                await conn.wait(self._read_timeout)
        except BaseException:
            self.close()
            raise
        self._release()

    async def read(self) -> bytes:
        parts = [data async for data in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _release(self) -> None:
        if not self._done:
            self._done = True
            if self._deadline is not None:
                self._deadline.cancel()
            self._conn.pool.release(self._conn)

    def close(self) -> None:
        if self._done:
            return
        conn = self._conn
        if conn.complete and conn.error is None and not conn.body:
            self._release()
            return
        self._done = True
        if self._deadline is not None:
            self._deadline.cancel()
        conn.close()
        conn.pool.release(conn)


class Pool:
    """Keep-alive connections for one provider: at most ``limit`` in use at once."""

    def __init__(self, limit: int, connect_timeout: float | None, read_timeout: float | None,
                 total_timeout: float | None, keepalive: float = 30.0, proxies: ProxyRules | None = None) -> None:
        self.limit = max(1, limit)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.keepalive = keepalive
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set on first use
        self.proxies = proxies
        self._routes: dict[Key, Proxy | None] = {}  # (scheme, host, port) -> its proxy, decided once
        self._idle: dict[Key, list[Connection]] = {}
        self._in_use = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        scheme, host, port, host_header, target = _split(url)
        key: Key = (scheme, host, port)
        if self.proxies is not None:
            key, target, headers = self._via_proxy(key, host_header, target, headers)
        head = _head(method, target, host_header, headers, body)
        conn = await self._acquire(key)
        deadline = None
        try:
            if self.total_timeout:
                deadline = self.loop.call_later(self.total_timeout, conn.fail, TimeoutError())
            conn._reset()
            if body and len(body) > 65536:
                conn.transport.writelines((head, body))  # type: ignore[union-attr]
            else:
                conn.transport.write(head + body if body else head)  # type: ignore[union-attr]
            while not conn.head_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(self.read_timeout)
        except BaseException:
            if deadline is not None:
                deadline.cancel()
            conn.close()
            self.release(conn)
            raise
        return Response(conn, self.read_timeout, deadline)

    def _via_proxy(self, key: Key, host_header: str, target: str,
                   headers: Mapping[str, str]) -> tuple[Key, str, Mapping[str, str]]:
        """The pool key, request target and headers for ``key``'s route: unchanged when it goes direct."""
        proxy = self._routes.get(key, _UNDECIDED)
        if proxy is _UNDECIDED:
            try:
                proxy = self.proxies.choose(*key)  # type: ignore[union-attr]
            except ProxyError as exc:
                raise ConnectError(str(exc)) from None
            if len(self._routes) >= MAX_ROUTES:
                self._routes.clear()
            self._routes[key] = proxy
        if proxy is None:
            return key, target, headers
        if key[0] == "http":  # absolute form, to the proxy
            target = f"http://{host_header}{target}"
            if proxy.authorization:
                headers = {**{k: v for k, v in headers.items() if k.lower() != "proxy-authorization"},
                           "Proxy-Authorization": proxy.authorization}
        return (*key, proxy), target, headers

    async def _acquire(self, key: Key) -> Connection:
        if self._closed:
            raise ConnectError("ClientClosed")
        idle = self._idle.get(key)
        now = self.loop.time()
        while idle:
            conn = idle.pop()  # the most recently used: the warmest
            if conn.lost or conn.transport.is_closing() or now - conn.idle_since > self.keepalive:  # type: ignore[union-attr]
                conn.close()
                continue
            conn.busy = True
            self._in_use += 1
            return conn
        if self._in_use >= self.limit:
            await self._wait_for_slot()
            return await self._acquire(key)
        self._in_use += 1
        try:
            return await self._connect(key)
        except BaseException:
            self._in_use -= 1
            self._wake_one()
            raise

    async def _wait_for_slot(self) -> None:
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        timer = self.loop.call_later(self.connect_timeout, _expire, waiter) if self.connect_timeout else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def _connect(self, key: Key) -> Connection:
        tls = self._tls() if key[0] == "https" else None
        try:
            async with asyncio.timeout(self.connect_timeout):  # also bounds a proxy's CONNECT and the TLS in it
                if len(key) == 4:
                    return await self._connect_via_proxy(key, tls)
                host, port = key[1], key[2]
                _, conn = await self.loop.create_connection(
                    lambda: Connection(self, key), host, port, ssl=tls, server_hostname=host if tls else None)
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise ConnectError(type(exc).__name__) from None
        except ProxyError as exc:
            raise ConnectError(str(exc)) from None
        return conn

    async def _connect_via_proxy(self, key: Key, tls: ssl.SSLContext | None) -> Connection:
        _, host, port, proxy = key
        if tls is not None:
            conn = Connection(self, key)
            await open_tunnel(self.loop, proxy, host, port, conn, tls)
            return conn
        try:
            _, proxied = await self.loop.create_connection(lambda: _ProxiedConnection(self, key),
                                                           proxy.host, proxy.port)
        except OSError as exc:
            raise ProxyError(f"proxy {type(exc).__name__}") from None
        return proxied

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.options |= ssl.OP_NO_COMPRESSION
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    def release(self, conn: Connection) -> None:
        """A connection's answer is over (read to its end, or abandoned and closed)."""
        self._in_use -= 1
        if (conn.complete and conn.keep_alive and conn.error is None and not conn.lost and not conn.body
                and not self._closed):
            conn.busy = False
            conn.idle_since = self.loop.time()
            self._idle.setdefault(conn.key, []).append(conn)
        else:
            conn.close()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _lost(self, conn: Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _split(url: str) -> tuple[str, str, int, str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError("InvalidURL")
    port = parts.port or (443 if scheme == "https" else 80)
    netloc = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return scheme, parts.hostname, port, netloc, target


def _head(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    seen = set()
    for name, value in headers.items():
        if not isinstance(value, str):
            value = str(value)
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} has a line break in it")
        lower = name.lower()
        if lower in ("host", "content-length", "transfer-encoding"):
            continue
        seen.add(lower)
        lines.append(f"{name}: {value}\r\n")
    for lower, line in DEFAULT_HEADERS:
        if lower not in seen:
            lines.append(line)
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")
