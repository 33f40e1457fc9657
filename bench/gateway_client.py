"""Run the gateway with another upstream client behind ``gateway/upstream.py`` (the client comparison).

    python -m bench.gateway_client {aiohttp,httpx,httpx-aiohttp} serve --config FILE ...

The gateway's own client is ``gateway.http1`` (see docs/benchmark.md). This launcher swaps in aiohttp
(the client it had before, as it was configured), or an httpx ``AsyncClient`` (httpx's own transport,
or httpx-aiohttp's), each implementing the same ``UpstreamClient`` interface, so the comparison
measures the client and nothing else. It is benchmark code, not a supported mode.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping

import httpx

from gateway import upstream
from gateway.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from providers.base import Provider, UpstreamRequest, UpstreamResponse


class _HttpxStream:
    def __init__(self, response: httpx.Response, label: str) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = dict(response.headers)
        self._label = label

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.aiter_raw():
                yield data
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"upstream '{self._label}' went silent longer than its read timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream '{self._label}' failed mid-stream ({type(exc).__name__})") from None

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"upstream '{self._label}' timed out") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream '{self._label}' failed ({type(exc).__name__})") from None
        finally:
            await self._response.aclose()

    def close(self) -> None:
        import asyncio

        asyncio.ensure_future(self._response.aclose())


class HttpxClient:
    kind = "httpx"

    def __init__(self, provider: Provider) -> None:
        config = provider.config
        self.name = config.name
        timeout = httpx.Timeout(config.timeout.total, connect=config.timeout.connect, read=config.timeout.read)
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        if self.kind == "httpx-aiohttp":
            from httpx_aiohttp import HttpxAiohttpClient

            self._client: httpx.AsyncClient = HttpxAiohttpClient(timeout=timeout, limits=limits, trust_env=False)
        else:
            self._client = httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)

    async def open(self, request: UpstreamRequest) -> _HttpxStream:
        try:
            built = self._client.build_request(request.method, request.url, headers=dict(request.headers),
                                               content=request.body)
            return _HttpxStream(await self._client.send(built, stream=True), self.name)
        except httpx.ConnectError:
            raise UpstreamConnectError(f"cannot connect to upstream '{self.name}'") from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream '{self.name}' failed ({type(exc).__name__})") from None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        stream = await self.open(request)
        body = await stream.read()
        return UpstreamResponse(status=stream.status, headers=stream.headers, body=body)

    async def close(self) -> None:
        await self._client.aclose()


class HttpxAiohttpClient(HttpxClient):
    kind = "httpx-aiohttp"


class _AiohttpStream:
    def __init__(self, response, label: str) -> None:
        self._response = response
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self._label = label

    async def chunks(self) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for data in self._response.content.iter_any():
                yield data
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{self._label}' went silent longer than its read timeout") from None
        except aiohttp.ClientError:
            raise UpstreamError(f"upstream '{self._label}' closed the stream mid-way") from None

    async def read(self) -> bytes:
        import aiohttp

        try:
            return await self._response.read()
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{self._label}' timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream '{self._label}' failed ({type(exc).__name__})") from None
        finally:
            self._response.release()

    def close(self) -> None:
        self._response.close()


class AiohttpClient:
    """The gateway's client before ``gateway.http1``, with the settings it had."""

    def __init__(self, provider: Provider) -> None:
        import aiohttp

        config = provider.config
        self.name = config.name
        timeout = aiohttp.ClientTimeout(total=config.timeout.total, connect=config.timeout.connect,
                                        sock_connect=config.timeout.connect, sock_read=config.timeout.read)
        connector = aiohttp.TCPConnector(limit=config.max_connections, limit_per_host=0, ttl_dns_cache=300,
                                         keepalive_timeout=30, enable_cleanup_closed=False)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",), trust_env=False)

    async def open(self, request: UpstreamRequest) -> _AiohttpStream:
        import aiohttp

        try:
            response = await self._session.request(request.method, request.url, headers=request.headers,
                                                   data=request.body, allow_redirects=False)
        except aiohttp.ClientConnectorError:
            raise UpstreamConnectError(f"cannot connect to upstream '{self.name}'") from None
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream '{self.name}' failed ({type(exc).__name__})") from None
        return _AiohttpStream(response, self.name)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        stream = await self.open(request)
        body = await stream.read()
        return UpstreamResponse(status=stream.status, headers=stream.headers, body=body)

    async def close(self) -> None:
        await self._session.close()


CLIENTS = {"aiohttp": AiohttpClient, "httpx": HttpxClient, "httpx-aiohttp": HttpxAiohttpClient}


def main(argv: list[str]) -> int:
    kind, rest = argv[0], argv[1:]
    if kind != "http1":
        upstream.HttpClient = CLIENTS[kind]  # type: ignore[misc]  # the pool builds clients by this name
    from gateway.cli import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
