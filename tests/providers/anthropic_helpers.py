"""Shared helpers of the Anthropic provider tests (test_anthropic_*.py)."""

from __future__ import annotations

import orjson

from providers.anthropic import AnthropicProvider
from providers.base import Call, ProviderConfig, UpstreamResponse

KEY = "sk-ant-api03-secretsecretsecret"
USER = [{"role": "user", "content": "hi"}]


def provider(api_base="https://api.anthropic.com", drop=False, headers=None, **options) -> AnthropicProvider:
    values = {name: spec.default for name, spec in AnthropicProvider.options.items()}
    values.update(options)
    return AnthropicProvider(ProviderConfig(name="claude", type="anthropic", api_base=api_base, api_key=KEY,
                                            headers=headers or {}, drop_unsupported_params=drop, options=values))


def call(body, **kw) -> Call:
    body = {"model": "alias", "messages": USER, **body}
    return Call(body=body, model="claude-sonnet-4-6", request_id="req-1", created=1, **kw)


def reply(body, status=200, headers=None) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamResponse(status=status, headers=headers or {}, body=raw)
