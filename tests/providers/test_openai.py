"""The reference provider: body edits, response relay, stream relay, error mapping."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import ContextLengthExceeded, InvalidApiKey, UpstreamError, UpstreamRateLimited
from providers.base import Call, ProviderConfig, UpstreamResponse
from providers.openai import OpenAIProvider


@pytest.fixture
def provider():
    return OpenAIProvider(ProviderConfig(name="openai-main", type="openai", api_base="http://up/v1/", api_key="sk-vendor-secret-123",
                                         headers={"x-extra": "1"}, options={"organization": "org-1", "project": None}))


def call(body, **kw):
    return Call(body=body, model="gpt-4o-mini-2024-07-18", request_id="r1", created=1, **kw)


def test_request_keeps_fields_and_edits_only_what_is_documented(provider):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "seed": 1, "weird_future_field": {"a": 1},
            "api_key": "client-key", "base_url": "http://evil", "stream": True}
    request = provider.build_chat(call(body, stream=True))
    sent = orjson.loads(request.body)
    assert request.url == "http://up/v1/chat/completions"
    assert sent["model"] == "gpt-4o-mini-2024-07-18" and sent["weird_future_field"] == {"a": 1}
    assert sent["stream_options"] == {"include_usage": True}
    assert "api_key" not in sent and "base_url" not in sent
    assert request.headers["authorization"] == "Bearer sk-vendor-secret-123"
    assert request.headers["openai-organization"] == "org-1" and request.headers["x-extra"] == "1"
    assert body["model"] == "gpt-4o-mini"  # the client's body is not mutated


def test_response_bytes_are_relayed(provider):
    raw = b'{"id":"c","object":"chat.completion","created":1,"model":"m-served","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
    translated = provider.parse_chat(call({}), UpstreamResponse(200, {}, raw))
    assert translated.body is raw
    assert (translated.usage.prompt_tokens, translated.usage.completion_tokens, translated.model) == (3, 4, "m-served")


def test_malformed_response(provider):
    with pytest.raises(UpstreamError):
        provider.parse_chat(call({}), UpstreamResponse(200, {}, b"<html>"))


def frames(provider, include_usage, raw):
    translator = provider.stream_translator(call({}, stream=True, include_usage=include_usage))
    out = translator.feed(raw) + translator.finish()
    return translator, [orjson.loads(f[6:]) for f in out]


STREAM = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}\n\n'
          b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}\n\n'
          b"data: [DONE]\n\n")


def test_stream_usage_chunk_removed_when_client_did_not_ask(provider):
    translator, chunks = frames(provider, False, STREAM)
    assert len(chunks) == 1 and "usage" not in chunks[0]
    assert translator.usage.total_tokens == 3


def test_stream_usage_chunk_kept_when_client_asked(provider):
    _, chunks = frames(provider, True, STREAM)
    assert chunks[-1]["usage"]["total_tokens"] == 3 and chunks[0]["usage"] is None


def test_stream_without_done_is_an_error(provider):
    translator = provider.stream_translator(call({}, stream=True))
    translator.feed(STREAM[:200])
    with pytest.raises(UpstreamError):
        translator.finish()


def test_error_event_inside_stream(provider):
    translator = provider.stream_translator(call({}, stream=True))
    with pytest.raises(UpstreamError):
        translator.feed(b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n')


@pytest.mark.parametrize("status,body,cls", [
    (401, {"error": {"message": "Incorrect API key provided: sk-vendor-secret-123", "code": "invalid_api_key"}}, InvalidApiKey),
    (429, {"error": {"message": "slow", "code": "rate_limit_exceeded"}}, UpstreamRateLimited),
    (400, {"error": {"message": "This model's maximum context length is 8192 tokens", "code": None}}, ContextLengthExceeded),
])
def test_error_mapping(provider, status, body, cls):
    error = provider.map_error(UpstreamResponse(status, {"retry-after": "3"}, orjson.dumps(body)))
    assert isinstance(error, cls)
    assert "sk-vendor-secret-123" not in error.message
    if status == 429:
        assert error.retry_after == 3


def test_insufficient_quota(provider):
    error = provider.map_error(UpstreamResponse(429, {}, b'{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}'))
    assert error.code == "insufficient_quota" and error.status == 429


def test_error_after_content_in_one_read_keeps_the_content(provider):
    raw = STREAM.split(b"\n\n")[0] + b"\n\n" + b'data: {"error":{"message":"boom","type":"server_error"}}\n\n'
    translator = provider.stream_translator(call({}, stream=True))
    frames = translator.feed(raw)
    assert len(frames) == 1 and b"hi" in frames[0]
    with pytest.raises(UpstreamError):
        translator.finish()
