"""The one module that talks HTTP to vendors.

One pooled client per provider (keep-alive, connection limits and timeouts from its config), created
at start-up and closed at shutdown. The client library is aiohttp: the performance issue measured
httpx, httpx-aiohttp and aiohttp behind this interface (see the README's benchmark section), and
nothing outside this module knows which one is used.

Transport failures become the gateway's taxonomy here: connect errors -> ``UpstreamConnectError``,
time-outs -> ``UpstreamTimeout``, anything else on the wire -> ``UpstreamError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import aiohttp

from gateway.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from providers.base import Provider, UpstreamRequest, UpstreamResponse


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


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


class _AiohttpStream:
    __slots__ = ("_response", "status", "headers", "_timeout_label")

    def __init__(self, response: aiohttp.ClientResponse, label: str) -> None:
        self._response = response
        self.status = response.status
        self.headers = _lower(response.headers)
        self._timeout_label = label

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                yield data
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"upstream '{self._timeout_label}' went silent longer than its read timeout") from None
        except aiohttp.ClientPayloadError:
            raise UpstreamError(f"upstream '{self._timeout_label}' closed the stream mid-way") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream '{self._timeout_label}' failed mid-stream ({type(exc).__name__})") from None

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"upstream '{self._timeout_label}' timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream '{self._timeout_label}' failed ({type(exc).__name__})") from None
        finally:
            self._response.release()

    def close(self) -> None:
        # closing (not releasing) drops the connection, so an upstream stream we abandon stops at once
        self._response.close()


class AiohttpClient:
    """A pooled aiohttp session for one provider."""

    def __init__(self, provider: Provider) -> None:
        config = provider.config
        self.name = config.name
        self._timeout = aiohttp.ClientTimeout(total=config.timeout.total, connect=config.timeout.connect,
                                              sock_connect=config.timeout.connect, sock_read=config.timeout.read)
        connector = aiohttp.TCPConnector(limit=config.max_connections, limit_per_host=0, ttl_dns_cache=300,
                                         keepalive_timeout=30, enable_cleanup_closed=False)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",), trust_env=False)

    async def _request(self, request: UpstreamRequest) -> aiohttp.ClientResponse:
        if request.delay:
            await asyncio.sleep(request.delay)
        try:
            return await self._session.request(request.method, request.url, headers=request.headers,
                                               data=request.body, allow_redirects=False)
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamConnectError(f"cannot connect to upstream '{self.name}' ({_reason(exc)})") from None
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream '{self.name}' failed ({type(exc).__name__})") from None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        response = await self._request(request)
        stream = _AiohttpStream(response, self.name)
        body = await stream.read()
        return UpstreamResponse(status=stream.status, headers=stream.headers, body=body)

    async def open(self, request: UpstreamRequest) -> UpstreamStream:
        return _AiohttpStream(await self._request(request), self.name)

    async def close(self) -> None:
        await self._session.close()


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    return type(exc.os_error).__name__ if exc.os_error else type(exc).__name__


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
            self._clients[name] = LocalClient(provider) if hasattr(provider, "serve") else AiohttpClient(provider)

    def get(self, provider_name: str) -> UpstreamClient:
        return self._clients[provider_name]

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients.values()), return_exceptions=True)
