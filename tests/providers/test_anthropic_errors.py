"""Anthropic errors: status and error type -> the gateway's taxonomy, Retry-After, scrubbing.

Whole recorded cases live in tests/golden/anthropic/*.json; these tests pin the rules one at a time.
"""

from __future__ import annotations

import pytest

from gateway.errors import (
    ContextLengthExceeded,
    InvalidApiKey,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RequestTooLarge,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from tests.providers.anthropic_helpers import KEY, provider, reply

pytestmark = pytest.mark.timeout(30)


def error_body(kind, text_="nope"):
    return {"type": "error", "error": {"type": kind, "message": text_}, "request_id": "req_1"}


@pytest.mark.parametrize(("status", "kind", "text_", "cls", "code", "http"), [
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", ContextLengthExceeded,
     "context_length_exceeded", 400),
    (400, "invalid_request_error", "input length and `max_tokens` exceed context limit: 1 + 2 > 3",
     ContextLengthExceeded, "context_length_exceeded", 400),
    (400, "invalid_request_error", "messages: bad", UpstreamClientError, None, 400),
    (401, "authentication_error", "invalid x-api-key", InvalidApiKey, "invalid_api_key", 401),
    (402, "billing_error", "credit balance too low", UpstreamRateLimited, "insufficient_quota", 429),
    (403, "permission_error", "no", PermissionDenied, "permission_denied", 403),
    (404, "not_found_error", "model: x", ModelNotFound, "model_not_found", 404),
    (413, "request_too_large", "too big", RequestTooLarge, "request_too_large", 413),
    (429, "rate_limit_error", "slow", UpstreamRateLimited, "rate_limit_exceeded", 429),
    (500, "api_error", "oops", UpstreamError, "upstream_error", 502),
    (504, "timeout_error", "late", UpstreamTimeout, "timeout", 504),
    (529, "overloaded_error", "Overloaded", Overloaded, "overloaded", 503),
])
def test_error_mapping(status, kind, text_, cls, code, http):
    error = provider().map_error(reply(error_body(kind, text_), status))
    assert type(error) is cls and error.code == code and error.status == http
    if cls is ContextLengthExceeded:
        assert error.param == "messages"


def test_billing_is_insufficient_quota_type():
    error = provider().map_error(reply(error_body("billing_error"), 402))
    assert error.envelope()["error"]["type"] == "insufficient_quota"


def test_retry_after_is_kept():
    error = provider().map_error(reply(error_body("rate_limit_error"), 429, {"retry-after": "12"}))
    assert error.retry_after == 12 and error.response_headers()["retry-after"] == "12"
    overloaded = provider().map_error(reply(error_body("overloaded_error"), 529, {"retry-after": "3"}))
    assert overloaded.retry_after == 3


def test_key_is_never_echoed():
    error = provider().map_error(reply(error_body("authentication_error", f"invalid x-api-key {KEY}"), 401))
    assert KEY not in error.message
    other = provider().map_error(reply(error_body("invalid_request_error", f"bad key {KEY} here"), 400))
    assert KEY not in other.message


def test_non_json_error_body():
    error = provider().map_error(reply(b"<html>Bad Gateway</html>", 502))
    assert isinstance(error, UpstreamError) and "Bad Gateway" in error.message
