"""Anthropic errors -> the gateway's taxonomy (the only place that reads Anthropic's error texts).

Anthropic answers ``{"type": "error", "error": {"type": "rate_limit_error", "message": ...}}`` with
the HTTP status, or sends the same object as an ``event: error`` inside a stream after the 200:

    400 invalid_request_error   -> 400 (context_length_exceeded when the prompt is too long)
    401 authentication_error    -> 401 invalid_api_key (fixed message: never the key)
    402 billing_error           -> 429 insufficient_quota
    403 permission_error        -> 403 permission_denied
    404 not_found_error         -> 404 model_not_found
    413 request_too_large       -> 413 request_too_large
    429 rate_limit_error        -> 429 rate_limit_exceeded, Retry-After kept
    500 api_error               -> 502 upstream_error
    504 timeout_error           -> 504 timeout
    529 overloaded_error        -> 503 overloaded
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import orjson

from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidApiKey,
    Overloaded,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    from_upstream_status,
    parse_retry_after,
)

# the HTTP status Anthropic uses for each error type (used for errors that arrive inside a stream)
STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

CONTEXT_LENGTH_MARKERS = ("prompt is too long", "exceed context limit", "exceeds the context window",
                          "context window")


def error_fields(body: bytes) -> tuple[str | None, str]:
    """(Anthropic error type, message) from an error body; the raw text when it is not JSON."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") if isinstance(error.get("type"), str) else None
        return kind, str(error.get("message") or "")
    return None, body[:500].decode("utf-8", "replace").strip()


def map_error(status: int, headers: Mapping[str, str], body: bytes, provider: str,
              scrub: Callable[[str], str]) -> GatewayError:
    kind, message = error_fields(body)
    if status < 400 and kind:
        status = STATUS_BY_TYPE.get(kind, 502)
    message = scrub(message) or f"upstream answered HTTP {status}"
    retry_after = parse_retry_after(dict(headers))
    if status == 401 or kind == "authentication_error":
        return InvalidApiKey(f"provider '{provider}' (anthropic) rejected the configured API key")
    if status == 402 or kind == "billing_error":
        return UpstreamRateLimited(message, code="insufficient_quota", error_type="insufficient_quota",
                                   retry_after=retry_after)
    if status == 529 or kind == "overloaded_error":
        return Overloaded(message, retry_after=retry_after)
    if status in (400, 413) and any(marker in message.lower() for marker in CONTEXT_LENGTH_MARKERS):
        return ContextLengthExceeded(message, param="messages")
    if status == 429 or kind == "rate_limit_error":
        return UpstreamRateLimited(message, retry_after=retry_after)
    if kind == "timeout_error":
        return UpstreamTimeout(message)
    if status >= 500:
        return UpstreamError(message, retry_after=retry_after)
    return from_upstream_status(status, message, retry_after=retry_after)
