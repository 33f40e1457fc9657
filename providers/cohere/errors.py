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

from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidApiKey,
    UpstreamError,
    UpstreamTimeout,
    parse_retry_after,
)
from providers.base import UpstreamResponse
from providers.vendor_answers import error_json, error_text, rest_status_error

CONTEXT_MARKERS = ("too many tokens", "context length", "maximum context")


def message_of(response: UpstreamResponse) -> str:
    body = error_json(response.body)
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value
    return error_text(response, "Cohere")


def map_error(response: UpstreamResponse, scrub) -> GatewayError:
    message = scrub(message_of(response))
    status = response.status
    if status in (400, 413) and any(marker in message.lower() for marker in CONTEXT_MARKERS):
        return ContextLengthExceeded(message, param="messages")
    if status in (401, 498):
        return InvalidApiKey(message)
    if status == 499:
        return UpstreamError(message)
    if status == 504:
        return UpstreamTimeout(message)
    return rest_status_error(status, message, parse_retry_after(dict(response.headers)))
