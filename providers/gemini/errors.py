"""Gemini error bodies -> the gateway's taxonomy.

Body: ``{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT", "details": [...]}}``,
where ``details`` may hold a ``google.rpc.ErrorInfo`` (``reason``) and a ``google.rpc.RetryInfo``
(``retryDelay: "12s"``).

    400 + reason API_KEY_INVALID / "API key not valid"  -> InvalidApiKey (401)
    401 / UNAUTHENTICATED                               -> InvalidApiKey (401)
    400 + "input token count ... exceeds the maximum"   -> ContextLengthExceeded (param "messages")
    429 RESOURCE_EXHAUSTED                              -> UpstreamRateLimited, Retry-After header kept
                                                           (else RetryInfo.retryDelay)
    503 UNAVAILABLE                                     -> Overloaded
    504 DEADLINE_EXCEEDED                               -> UpstreamTimeout
    anything else                                       -> from_upstream_status (code = status, lower-case)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidApiKey,
    UpstreamRateLimited,
    UpstreamTimeout,
    from_upstream_status,
    parse_retry_after,
)
from providers.base import UpstreamResponse

AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_CONTEXT_LENGTH = re.compile(r"input token count.*exceeds|exceeds the maximum number of tokens", re.I | re.S)
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def error_fields(response: UpstreamResponse) -> tuple[str, str | None, list[Any]]:
    """(message, status, details) from a Gemini error body, tolerating other bodies."""
    try:
        body = orjson.loads(response.body) if response.body else None
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(body, list) and body and isinstance(body[0], dict):  # the non-SSE stream's array form
        error = body[0].get("error")
    if not isinstance(error, dict):
        text = response.body[:500].decode("utf-8", "replace").strip()
        return text or f"upstream answered HTTP {response.status}", None, []
    status = error.get("status") if isinstance(error.get("status"), str) else None
    details = error.get("details") if isinstance(error.get("details"), list) else []
    message = str(error.get("message") or f"upstream answered HTTP {response.status}")
    return message, status, [d for d in details if isinstance(d, dict)]


def map_gemini_error(response: UpstreamResponse, scrub: Callable[[str], str]) -> GatewayError:
    message, status, details = error_fields(response)
    message = scrub(message)
    reasons = {d.get("reason") for d in details if d.get("reason")}
    if response.status == 401 or status == "UNAUTHENTICATED" or reasons & AUTH_REASONS \
            or (response.status == 400 and "api key not valid" in message.lower()):
        return InvalidApiKey(message)
    if response.status in (400, 413) and _CONTEXT_LENGTH.search(message):
        return ContextLengthExceeded(message, param="messages")
    if response.status == 429:
        retry_after = parse_retry_after(dict(response.headers))
        if retry_after is None:
            retry_after = _retry_delay(details)
        return UpstreamRateLimited(message, code="rate_limit_exceeded", retry_after=retry_after)
    if response.status == 504:
        return UpstreamTimeout(message)
    return from_upstream_status(response.status, message, code=status.lower() if status else None,
                                retry_after=parse_retry_after(dict(response.headers)))


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for detail in details:
        match = _DELAY.match(str(detail.get("retryDelay") or ""))
        if match:
            return float(match.group(1))
    return None
