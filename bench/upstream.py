"""A fast fake OpenAI upstream for the benchmark: raw asyncio + httptools, no framework.

    python -m bench.upstream --port P [--chunks 20] [--interval-ms 2]

``POST .../chat/completions`` answers a fixed ``chat.completion`` (the same bytes nginx serves), or,
when the body asks for ``"stream": true``, an SSE stream of ``--chunks`` chunks spaced
``--interval-ms`` apart (chunked transfer encoding), plus the usage chunk when the body asks for
``include_usage``, then ``data: [DONE]``. Anything else is a 404. Keep-alive throughout; it never
reads more than it needs and does no logging, so it costs the machine as little as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import httptools

from bench.loop import run
from bench.payloads import RESPONSE_BODY, stream_frames

RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(RESPONSE_BODY)).encode() + b"\r\n\r\n" + RESPONSE_BODY)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
               b"transfer-encoding: chunked\r\n\r\n")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, chunks: int, interval: float) -> None:
        self.chunks = chunks
        self.interval = interval
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.streaming: asyncio.Task | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.streaming is not None:
            self.streaming.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if not self.url.endswith(b"/chat/completions"):
            transport.write(NOT_FOUND)
            return
        body = b"".join(self.body)
        if b'"stream":true' in body or b'"stream": true' in body:
            usage = b"include_usage" in body
            self.streaming = asyncio.get_running_loop().create_task(self._stream(transport, usage))
        else:
            transport.write(RESPONSE)

    async def _stream(self, transport: asyncio.Transport, usage: bool) -> None:
        frames = stream_frames(self.chunks, usage)
        transport.write(STREAM_HEAD + _chunk(frames[0]))
        for frame in frames[1:]:
            if self.interval:
                await asyncio.sleep(self.interval)
            if transport.is_closing():
                return
            transport.write(_chunk(frame))
        transport.write(b"0\r\n\r\n")
        self.streaming = None


async def serve(port: int, chunks: int, interval: float, host: str = "127.0.0.1") -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(chunks, interval), host, port, backlog=4096,
                                      reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--interval-ms", type=float, default=2.0)
    args = p.parse_args(argv)
    run(serve(args.port, args.chunks, args.interval_ms / 1000))


if __name__ == "__main__":
    main()
