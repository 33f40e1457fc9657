"""The floor: a bare Starlette pass-through, the least a Python proxy can do per request.

    python -m bench.floor --port P --upstream URL --stream-upstream URL [--client aiohttp|httpx|httpx-aiohttp|raw]

``POST /v1/chat/completions`` is forwarded to ``--upstream`` and ``POST /s/v1/chat/completions`` to
``--stream-upstream``, body bytes as received; the answer is relayed as bytes, streamed chunk by chunk
when the upstream sends ``text/event-stream``. No auth, no parsing, no metrics, no logging. The
``--client`` switch is the client comparison of the benchmark (``bench/clients.py``).
"""

from __future__ import annotations

import argparse
import contextlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

FORWARD = {"content-type": "application/json", "authorization": "Bearer sk-bench-upstream"}


class AiohttpForwarder:
    def __init__(self) -> None:
        self.session = None

    async def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000),
                                             skip_auto_headers=("User-Agent",))

    async def forward(self, url: str, body: bytes) -> Response:
        upstream = await self.session.post(url, data=body, headers=FORWARD)
        if upstream.content_type == "text/event-stream":
            async def chunks():
                try:
                    async for data in upstream.content.iter_any():
                        yield data
                finally:
                    upstream.release()
            return StreamingResponse(chunks(), status_code=upstream.status, media_type="text/event-stream")
        data = await upstream.read()
        return Response(data, status_code=upstream.status, media_type="application/json")

    async def stop(self) -> None:
        await self.session.close()


class HttpxForwarder:
    """httpx's AsyncClient, with its own transport (``httpx``) or aiohttp's (``httpx-aiohttp``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.client = None

    async def start(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        if self.kind == "httpx-aiohttp":
            from httpx_aiohttp import HttpxAiohttpClient

            self.client = HttpxAiohttpClient(limits=limits, timeout=60)
        else:
            self.client = httpx.AsyncClient(limits=limits, timeout=60)

    async def forward(self, url: str, body: bytes) -> Response:
        request = self.client.build_request("POST", url, content=body, headers=FORWARD)
        upstream = await self.client.send(request, stream=True)
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            async def chunks():
                try:
                    async for data in upstream.aiter_raw():
                        yield data
                finally:
                    await upstream.aclose()
            return StreamingResponse(chunks(), status_code=upstream.status_code, media_type="text/event-stream")
        data = await upstream.aread()
        return Response(data, status_code=upstream.status_code, media_type="application/json")

    async def stop(self) -> None:
        await self.client.aclose()


class RawForwarder:
    """``bench.rawclient``: what a minimal HTTP client would cost (a measurement, not a candidate)."""

    async def start(self) -> None:
        from bench.rawclient import RawClient

        self.client = RawClient()

    async def forward(self, url: str, body: bytes) -> Response:
        conn = await self.client.post(url, body, FORWARD)
        if conn.content_type.startswith(b"text/event-stream"):
            async def chunks():
                try:
                    async for data in conn.iter_chunks():
                        yield data
                finally:
                    self.client.release(conn)
            return StreamingResponse(chunks(), status_code=conn.status, media_type="text/event-stream")
        data = b"".join([chunk async for chunk in conn.iter_chunks()])
        self.client.release(conn)
        return Response(data, status_code=conn.status, media_type="application/json")

    async def stop(self) -> None:
        await self.client.close()


def create_app(upstream: str, stream_upstream: str, client: str = "aiohttp") -> Starlette:
    if client == "aiohttp":
        forwarder = AiohttpForwarder()
    elif client == "raw":
        forwarder = RawForwarder()
    else:
        forwarder = HttpxForwarder(client)

    async def chat(request: Request) -> Response:
        return await forwarder.forward(upstream, await request.body())

    async def chat_stream(request: Request) -> Response:
        return await forwarder.forward(stream_upstream, await request.body())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await forwarder.start()
        yield
        await forwarder.stop()

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/s/v1/chat/completions", chat_stream, methods=["POST"])], lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--stream-upstream", required=True)
    p.add_argument("--client", choices=("aiohttp", "httpx", "httpx-aiohttp", "raw"), default="aiohttp")
    args = p.parse_args(argv)
    app = create_app(args.upstream, args.stream_upstream, args.client)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools", backlog=4096)


if __name__ == "__main__":
    main()
