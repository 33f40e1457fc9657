"""A fake HTTP forward proxy on 127.0.0.1: CONNECT tunnels and absolute-form requests.

Every upstream host it is asked for is reached on 127.0.0.1 (so a test may name ``api.vendor.test``
and still stay on the loopback). It records each request head it receives (``seen``), can demand
``Proxy-Authorization`` (answering 407 otherwise), refuse everything with 403, or stay silent.

    async with FakeProxy(auth=("user", "pw")) as proxy: ...      # on the running loop
    with FakeProxy().in_thread() as proxy: ...                     # for a test driving a gateway process
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names


class FakeProxy:
    def __init__(self, *, auth: tuple[str, str] | None = None, refuse: bool = False, silent: bool = False) -> None:
        self.auth = f"Basic {base64.b64encode(':'.join(auth).encode()).decode()}" if auth else None
        self.refuse = refuse
        self.silent = silent
        self.seen: list[Seen] = []
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    # -- running ------------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()  # type: ignore[union-attr]
        for writer in list(self._writers):
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeProxy]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(10)
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.__aexit__(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    # -- one client connection ----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            seen = await self._read_head(reader)
            if self.silent:
                await reader.read()  # until the client gives up
                return
            if not await self._allowed(seen, writer):
                return
            if seen.method == "CONNECT":
                port = int(seen.target.rpartition(":")[2])
                up_reader, up_writer = await self._open(port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            else:
                up_reader, up_writer = await self._open(urlsplit(seen.target).port or 80)
                await asyncio.gather(self._forward(seen, reader, writer, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            writer.close()

    async def _read_head(self, reader: asyncio.StreamReader) -> Seen:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        seen = Seen(method, target, headers)
        self.seen.append(seen)
        return seen

    async def _allowed(self, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if self.refuse:
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        elif self.auth is not None and seen.headers.get("proxy-authorization") != self.auth:
            writer.write(b'HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="fake"\r\n'
                         b"content-length: 0\r\nconnection: close\r\n\r\n")
        else:
            return True
        await writer.drain()
        return False

    async def _open(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        self._writers.add(up_writer)
        return up_reader, up_writer

    async def _forward(self, seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       upstream: asyncio.StreamWriter) -> None:
        """Absolute-form requests, one after another on this connection, sent on in origin form."""
        try:
            while True:
                parts = urlsplit(seen.target)
                lines = [f"{seen.method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1"]
                lines += [f"{k}: {v}" for k, v in seen.headers.items() if k != "proxy-authorization"]
                length = int(seen.headers.get("content-length", "0"))
                upstream.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + await reader.readexactly(length))
                await upstream.drain()
                seen = await self._read_head(reader)
                if not await self._allowed(seen, writer):
                    return
        finally:
            upstream.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
