"""What a fake received: the record of one request, and the reader every fake uses to take it in.

    body = await record(request, self.received)   # appended as Received(method, path, query, headers, json)

The body is parsed as JSON when it can be; otherwise it is kept as text (or None when empty), so a
fake can still answer a malformed request the way its vendor does and a test can see what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    json: Any


async def read_body(request: Request) -> Any:
    """The request body: parsed JSON, the text when it is not JSON, or None when it is empty."""
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


async def record(request: Request, received: list[Received]) -> Any:
    """Append the request to ``received``; return its body (as ``read_body``)."""
    body = await read_body(request)
    received.append(Received(request.method, request.url.path, dict(request.query_params),
                             {k.lower(): v for k, v in request.headers.items()}, body))
    return body
