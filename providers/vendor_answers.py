"""Reading what a native (not OpenAI-shaped) vendor API answers: the pieces several vendors share.

    load_object(body, provider)       a whole answer that must be a JSON object, else UpstreamError
    epoch_seconds(value)              an RFC 3339 timestamp (``created_at``) as seconds, 0 when unreadable
    error_json(body)                  an error body's JSON, None when empty or not JSON
    error_text(response, vendor)      the raw start of an error body that has no readable message
    rest_status_error(...)            402 (billing) and 422 (validation) as REST APIs mean them, else the
                                      default status mapping of ``gateway.errors``
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import GatewayError, UpstreamClientError, UpstreamError, UpstreamRateLimited, from_upstream_status
from providers.base import answer_json

if TYPE_CHECKING:
    from providers.base import UpstreamResponse


def load_object(body: bytes, provider_name: str) -> dict[str, Any]:
    data = answer_json(body, provider_name)
    if not isinstance(data, dict):
        raise UpstreamError(f"provider '{provider_name}' answered with JSON that is not an object")
    return data


def epoch_seconds(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def error_json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def error_text(response: UpstreamResponse, vendor: str) -> str:
    text = response.body[:500].decode("utf-8", "replace").strip()
    return text or f"{vendor} answered HTTP {response.status}"


def rest_status_error(status: int, message: str, retry_after: float | None) -> GatewayError:
    if status == 402:  # billing: another key or account may still work
        return UpstreamRateLimited(message, code="insufficient_quota", error_type="insufficient_quota",
                                   retry_after=retry_after)
    if status == 422:  # validation: OpenAI reports it as 400
        return UpstreamClientError(message, status=400)
    return from_upstream_status(status, message, retry_after=retry_after)
