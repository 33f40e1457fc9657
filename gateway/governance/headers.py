"""OpenAI's rate-limit headers, from the most restrictive window of key, team and deployment.

``x-ratelimit-limit-requests`` / ``-remaining-requests`` / ``-reset-requests`` come from the scope with
the fewest requests left, the ``-tokens`` variants from the scope with the fewest tokens left. A
reset is the time until the oldest entry leaves that window (when the remaining count next grows),
written like OpenAI's (``"20ms"``, ``"6s"``, ``"1m0s"``).
"""

from __future__ import annotations

from gateway.governance.windows import Scope, ScopeState


def format_duration(ms: int) -> str:
    ms = max(0, int(ms))
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def ratelimit_headers(windows: list[tuple[Scope, ScopeState]], now_ms: int, window_ms: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    requests = [(scope.rpm - state.count, scope, state) for scope, state in windows if scope.rpm]
    if requests:
        remaining, scope, state = min(requests, key=lambda item: item[0])
        reset = state.retry_ms if state.refused == "rpm" else _reset(state.oldest_request_ms, now_ms, window_ms)
        headers["x-ratelimit-limit-requests"] = str(scope.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, remaining))
        headers["x-ratelimit-reset-requests"] = format_duration(reset)
    tokens = [(scope.tpm - state.total, scope, state) for scope, state in windows if scope.tpm]
    if tokens:
        remaining, scope, state = min(tokens, key=lambda item: item[0])
        reset = state.retry_ms if state.refused == "tpm" else _reset(state.oldest_token_ms, now_ms, window_ms)
        headers["x-ratelimit-limit-tokens"] = str(scope.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, remaining))
        headers["x-ratelimit-reset-tokens"] = format_duration(reset)
    return headers


def _reset(oldest_ms: int, now_ms: int, window_ms: int) -> int:
    return oldest_ms + window_ms - now_ms if oldest_ms else 0
