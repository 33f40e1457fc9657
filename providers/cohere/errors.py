"""Cohere error bodies (``{"message": "...", "id"?: "..."}``) -> the gateway's error taxonomy.

    400 "too many tokens ..."     ContextLengthExceeded (param messages)
    401, 498 (invalid token)      InvalidApiKey
    402 (payment required)        UpstreamRateLimited type/code insufficient_quota (another key may work)
    422                           UpstreamClientError with status 400 (OpenAI reports validation as 400)
    429                           UpstreamRateLimited, Retry-After kept
    499 (client closed), 5xx      UpstreamError; 503 Overloaded; 504 UpstreamTimeout
    anything else                 gateway.errors.from_upstream_status
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidApiKey,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    from_upstream_status,
    parse_retry_after,
)
from providers.base import UpstreamResponse

CONTEXT_MARKERS = ("too many tokens", "context length", "maximum context")


def message_of(response: UpstreamResponse) -> str:
    try:
        body: Any = orjson.loads(response.body) if response.body else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value
    text = response.body[:500].decode("utf-8", "replace").strip()
    return text or f"Cohere answered HTTP {response.status}"


def map_error(response: UpstreamResponse, scrub) -> GatewayError:
    message = scrub(message_of(response))
    status = response.status
    retry_after = parse_retry_after(dict(response.headers))
    if status in (400, 413) and any(marker in message.lower() for marker in CONTEXT_MARKERS):
        return ContextLengthExceeded(message, param="messages")
    if status in (401, 498):
        return InvalidApiKey(message)
    if status == 402:
        return UpstreamRateLimited(message, code="insufficient_quota", error_type="insufficient_quota",
                                   retry_after=retry_after)
    if status == 422:
        return UpstreamClientError(message, status=400)
    if status == 499:
        return UpstreamError(message)
    if status == 504:
        return UpstreamTimeout(message)
    return from_upstream_status(status, message, retry_after=retry_after)
