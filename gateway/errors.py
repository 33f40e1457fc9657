"""The gateway's one error taxonomy.

Every failure a client can see is a ``GatewayError``; each subclass knows its HTTP status, OpenAI
error ``type`` and ``code``, and whether another attempt (on another deployment) may succeed::

    GatewayError
    ├── ClientError                      (the request is at fault; never retried)
    │   ├── InvalidRequest               400 invalid_request_error / invalid_request
    │   ├── UnsupportedParameter         400 invalid_request_error / unsupported_parameter
    │   ├── ContextLengthExceeded        400 invalid_request_error / context_length_exceeded
    │   ├── PolicyViolation              400 invalid_request_error / policy_violation
    │   ├── InvalidApiKey                401 invalid_request_error / invalid_api_key
    │   ├── PermissionDenied             403 permission_error      / permission_denied
    │   ├── ModelNotAllowed              403 permission_error      / model_not_allowed
    │   ├── ModelNotFound                404 invalid_request_error / model_not_found
    │   ├── NotFound                     404 invalid_request_error / not_found
    │   ├── MethodNotAllowed             405 invalid_request_error / method_not_allowed
    │   ├── Conflict                     409 invalid_request_error / conflict
    │   ├── RequestTooLarge              413 invalid_request_error / request_too_large
    │   ├── RateLimited                  429 requests              / rate_limit_exceeded
    │   └── BudgetExceeded               429 insufficient_quota    / budget_exceeded
    └── ServerError                      (an upstream or the gateway is at fault)
        ├── UpstreamClientError          the upstream's own 4xx, status kept (not retried)
        ├── UpstreamRateLimited          429 rate_limit_exceeded, Retry-After kept (retryable)
        ├── UpstreamError                502 server_error / upstream_error (retryable)
        ├── Overloaded                   503 server_error / overloaded (retryable)
        ├── NoHealthyDeployment          503 server_error / no_healthy_deployment
        ├── UpstreamTimeout              504 server_error / timeout (retryable)
        └── InternalError                500 server_error / internal_error

Provider plugins map vendor errors onto these classes (``Provider.map_error``); the core never
matches vendor message text. Messages never hold secrets: see ``scrub``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import orjson


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"
    retryable: ClassVar[bool] = False
    # whether this failure counts against the deployment's circuit breaker
    counts_as_failure: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status is not None:
            self.status = status  # type: ignore[misc]
        if error_type is not None:
            self.type = error_type  # type: ignore[misc]
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def body(self) -> bytes:
        return orjson.dumps(self.envelope())

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["retry-after"] = _format_seconds(self.retry_after)
        return headers


def _format_seconds(seconds: float) -> str:
    return str(max(0, int(seconds + 0.999)))


class ClientError(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidRequest(ClientError):
    code = "invalid_request"


class UnsupportedParameter(ClientError):
    code = "unsupported_parameter"


class ContextLengthExceeded(ClientError):
    code = "context_length_exceeded"


class PolicyViolation(ClientError):
    code = "policy_violation"


class InvalidApiKey(ClientError):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotAllowed(PermissionDenied):
    code = "model_not_allowed"


class ModelNotFound(ClientError):
    status = 404
    code = "model_not_found"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class RequestTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class RateLimited(ClientError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class BudgetExceeded(ClientError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class ServerError(GatewayError):
    status = 502
    type = "server_error"


class UpstreamClientError(ServerError):
    """An upstream 4xx that has no more specific class: its status reaches the client."""

    status = 400
    type = "invalid_request_error"
    code = None


class UpstreamRateLimited(ServerError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"
    retryable = True
    counts_as_failure = True


class UpstreamError(ServerError):
    status = 502
    code = "upstream_error"
    retryable = True
    counts_as_failure = True


class Overloaded(ServerError):
    status = 503
    code = "overloaded"
    retryable = True
    counts_as_failure = True


class NoHealthyDeployment(ServerError):
    status = 503
    code = "no_healthy_deployment"


class UpstreamTimeout(ServerError):
    status = 504
    code = "timeout"
    retryable = True
    counts_as_failure = True


class InternalError(ServerError):
    status = 500
    code = "internal_error"


class UpstreamConnectError(UpstreamError):
    """The upstream could not be reached at all (refused, DNS, TLS)."""


# (pattern, replacement): each keeps the label in front of a secret and masks the secret itself
_SECRET_PATTERNS = [
    (re.compile(r"\b(?:sk|pk|rk|r8|xai|pplx|hf|gsk|sy)[-_][A-Za-z0-9_\-]{8,}"), "***"),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"), "***"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=:+/]{8,}"), r"\1***"),
    (re.compile(r"(?i)((?:api[-_]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"), r"\1***"),
]


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove known secrets and anything shaped like an API key from a message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_STATUS_CLASSES: dict[int, type[GatewayError]] = {
    400: UpstreamClientError,
    401: InvalidApiKey,
    403: PermissionDenied,
    404: ModelNotFound,
    413: RequestTooLarge,
    429: UpstreamRateLimited,
    503: Overloaded,
    529: Overloaded,
}


def from_upstream_status(status: int, message: str, *, code: str | None = None, param: str | None = None,
                         retry_after: float | None = None) -> GatewayError:
    """The default mapping of an upstream HTTP status onto the taxonomy (providers refine it)."""
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = UpstreamError if status >= 500 else UpstreamClientError
    if cls is UpstreamClientError:
        return UpstreamClientError(message, status=status, code=code, param=param)
    if cls is UpstreamRateLimited:
        return UpstreamRateLimited(message, code=code or "rate_limit_exceeded", retry_after=retry_after)
    if cls in (InvalidApiKey, ModelNotFound, RequestTooLarge, PermissionDenied):
        return cls(message, param=param)
    return cls(message, retry_after=retry_after)


def parse_retry_after(headers: dict[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (delta seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        import time

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
