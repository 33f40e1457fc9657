"""Replicate HTTP errors (``{"detail": ...}`` or RFC 7807 ``{"type","title","status","detail"}``) ->
the gateway's error taxonomy.

    401                   InvalidApiKey
    402 (billing)         UpstreamRateLimited type/code insufficient_quota (another account may work)
    404                   ModelNotFound
    422 (invalid input)   UpstreamClientError with status 400, or ContextLengthExceeded when it says so
    429                   UpstreamRateLimited, Retry-After kept
    5xx                   UpstreamError (503 Overloaded)

A model that fails is not an HTTP error: it is a prediction with ``status: failed`` (see
``response.prediction_error``).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidApiKey,
    UpstreamClientError,
    UpstreamRateLimited,
    from_upstream_status,
    parse_retry_after,
)
from providers.base import UpstreamResponse
from providers.replicate.response import CONTEXT_MARKERS


def message_of(response: UpstreamResponse) -> str:
    try:
        body: Any = orjson.loads(response.body) if response.body else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):  # validation errors: [{"loc": [...], "msg": ...}]
            detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
        for value in (detail, body.get("title"), body.get("message"), body.get("error")):
            if isinstance(value, str) and value:
                return value
    text = response.body[:500].decode("utf-8", "replace").strip()
    return text or f"Replicate answered HTTP {response.status}"


def map_error(response: UpstreamResponse, scrub) -> GatewayError:
    message = scrub(message_of(response))
    status = response.status
    retry_after = parse_retry_after(dict(response.headers))
    if status in (400, 413, 422) and any(marker in message.lower() for marker in CONTEXT_MARKERS):
        return ContextLengthExceeded(message, param="messages")
    if status == 401:
        return InvalidApiKey(message)
    if status == 402:
        return UpstreamRateLimited(message, code="insufficient_quota", error_type="insufficient_quota",
                                   retry_after=retry_after)
    if status == 422:
        return UpstreamClientError(message, status=400)
    return from_upstream_status(status, message, retry_after=retry_after)
