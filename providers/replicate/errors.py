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

from gateway.errors import ContextLengthExceeded, GatewayError, parse_retry_after
from providers.base import UpstreamResponse
from providers.replicate.response import CONTEXT_MARKERS
from providers.vendor_answers import error_json, error_text, rest_status_error


def message_of(response: UpstreamResponse) -> str:
    body = error_json(response.body)
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):  # validation errors: [{"loc": [...], "msg": ...}]
            detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
        for value in (detail, body.get("title"), body.get("message"), body.get("error")):
            if isinstance(value, str) and value:
                return value
    return error_text(response, "Replicate")


def map_error(response: UpstreamResponse, scrub) -> GatewayError:
    """401 is ``InvalidApiKey`` through the default status mapping."""
    message = scrub(message_of(response))
    if response.status in (400, 413, 422) and any(marker in message.lower() for marker in CONTEXT_MARKERS):
        return ContextLengthExceeded(message, param="messages")
    return rest_status_error(response.status, message, parse_retry_after(dict(response.headers)))
