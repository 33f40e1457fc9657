"""Small helpers for the OpenAI-dialect provider unit tests."""

from __future__ import annotations

from typing import Any

import orjson

from providers.base import Call, ProviderConfig, UpstreamResponse
from providers.registry import Registry


def provider(kind: str, api_base: str = "http://upstream.test/v1", api_key: str | None = "test-key",
             drop: bool = False, headers: dict[str, str] | None = None, **options: Any):
    cls = Registry().get(kind)
    merged = {name: spec.default for name, spec in cls.options.items()}
    merged.update(options)
    return cls(ProviderConfig(name=f"{kind}-test", type=kind, api_base=api_base, api_key=api_key,
                              headers=headers or {}, drop_unsupported_params=drop, options=merged))


def call(body: dict[str, Any], model: str = "m", *, stream: bool = False, include_usage: bool = False,
         endpoint: str = "chat") -> Call:
    return Call(body=body, model=model, endpoint=endpoint, stream=stream, include_usage=include_usage,
                request_id="req-1", created=1700000000)


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> UpstreamResponse:
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    return UpstreamResponse(status=status, headers=headers or {}, body=raw)


def sse(*events: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + (e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def frames(output: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(f[len(b"data: "):]) for f in output]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
