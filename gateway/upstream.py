"""The one module that talks HTTP to vendors.

One pooled client per provider (keep-alive, a limit on connections in use, and the provider's
``connect`` / ``read`` / ``total`` time-outs), created at start-up and closed at shutdown. The client
is ``gateway.http1``: a small HTTP/1.1 pool on asyncio with httptools' parser. The performance issue
measured httpx, httpx-aiohttp and aiohttp behind this interface, then this client; aiohttp was the
best of the three and ``http1`` halves its cost again (docs/benchmark.md). Nothing outside this
module knows which client is used.

Egress proxies: a provider's ``proxy`` key, else ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` as they were
when the client was built (``gateway.http1_proxy``).

Transport failures become the gateway's taxonomy here: connect errors -> ``UpstreamConnectError``,
time-outs -> ``UpstreamTimeout``, anything else on the wire -> ``UpstreamError``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from gateway import http1
from gateway.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from gateway.http1_proxy import proxy_rules
from providers.base import Provider, UpstreamRequest, UpstreamResponse

log = logging.getLogger("switchyard")


class UpstreamStream(Protocol):
    status: int
    headers: Mapping[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class UpstreamClient(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def open(self, request: UpstreamRequest) -> UpstreamStream: ...

    async def close(self) -> None: ...


class _Stream:
    __slots__ = ("_response", "status", "headers", "_label")

    def __init__(self, response: http1.Response, label: str) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers  # lower-case names
        self._label = label

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.chunks():
                yield data
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{self._label}' went silent longer than its read timeout") from None
        except http1.ProtocolError:
            raise UpstreamError(f"upstream '{self._label}' closed the stream mid-way") from None

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{self._label}' timed out") from None
        except http1.ProtocolError as exc:
            raise UpstreamError(f"upstream '{self._label}' failed ({exc})") from None

    def close(self) -> None:
        # before the end of the body this drops the connection, so an abandoned stream stops at once
        self._response.close()


class HttpClient:
    """A pooled HTTP/1.1 client for one provider."""

    def __init__(self, provider: Provider, env: Mapping[str, str] | None = None) -> None:
        config = provider.config
        self.name = config.name
        timeout = config.timeout
        proxies = proxy_rules(config.proxy, os.environ if env is None else env)
        for problem in proxies.problems.values() if proxies is not None else ():
            log.warning("provider '%s': %s; its connections that would use it fail", self.name, problem)
        self._pool = http1.Pool(config.max_connections, connect_timeout=timeout.connect, read_timeout=timeout.read,
                                total_timeout=timeout.total, proxies=proxies)

    async def _request(self, request: UpstreamRequest) -> http1.Response:
        if request.delay:
            await asyncio.sleep(request.delay)
        try:
            return await self._pool.request(request.method, request.url, request.headers, request.body)
        except http1.ConnectError as exc:
            raise UpstreamConnectError(f"cannot connect to upstream '{self.name}' ({exc.reason})") from None
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from None
        except (http1.ProtocolError, ValueError) as exc:
            raise UpstreamError(f"upstream '{self.name}' failed ({exc})") from None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        stream = _Stream(await self._request(request), self.name)
        body = await stream.read()
        return UpstreamResponse(status=stream.status, headers=stream.headers, body=body)

    async def open(self, request: UpstreamRequest) -> UpstreamStream:
        return _Stream(await self._request(request), self.name)

    async def close(self) -> None:
        await self._pool.close()


class LocalClient:
    """For providers that answer in-process (the ``mock`` provider): same interface, no sockets."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        stream = await self.open(request)
        return UpstreamResponse(status=stream.status, headers=stream.headers, body=await stream.read())

    async def open(self, request: UpstreamRequest) -> UpstreamStream:
        return await self._provider.serve(request)  # type: ignore[attr-defined]

    async def close(self) -> None:
        return None


class UpstreamPool:
    """One client per configured provider, built at start-up."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self._clients: dict[str, UpstreamClient] = {}
        for name, provider in providers.items():
            self._clients[name] = LocalClient(provider) if hasattr(provider, "serve") else HttpClient(provider)

    def get(self, provider_name: str) -> UpstreamClient:
        return self._clients[provider_name]

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients.values()), return_exceptions=True)
