"""The mock provider: deterministic answers, usage, embeddings, errors, pacing."""

from __future__ import annotations

import asyncio
import base64
import struct

import orjson

from providers.base import Call, ProviderConfig
from providers.mock import MockProvider, embed


def make(**options):
    defaults = {name: spec.default for name, spec in MockProvider.options.items()}
    return MockProvider(ProviderConfig(name="mock", type="mock", api_base="mock://local", options={**defaults, **options}))


def run(provider, body, stream=False):
    call = Call(body=body, model="mock-model", stream=stream, include_usage=stream, request_id="r")

    async def go():
        request = provider.build_chat(call)
        upstream = await provider.serve(request)
        data = await upstream.read()
        return upstream, data
    return call, asyncio.run(go())


def test_echo_and_usage():
    provider = make()
    call, (upstream, data) = run(provider, {"model": "x", "messages": [{"role": "user", "content": "hello big world"}]})
    translated = provider.parse_chat(call, type("R", (), {"status": 200, "headers": {}, "body": data})())
    body = orjson.loads(translated.body)
    assert body["choices"][0]["message"]["content"] == "hello big world"
    assert body["model"] == "mock-model"
    assert translated.usage.prompt_tokens == 3 and translated.usage.completion_tokens == 3


def test_fixed_response_stream_in_chunks():
    provider = make(response="one two three four", chunks=2)
    call, (upstream, data) = run(provider, {"model": "x", "messages": [{"role": "user", "content": "q"}], "stream": True}, stream=True)
    translator = provider.stream_translator(call)
    frames = translator.feed(data) + translator.finish()
    deltas = [orjson.loads(f[6:]) for f in frames]
    contents = [d["choices"][0]["delta"].get("content") for d in deltas if d["choices"]]
    assert contents == ["", "one two", " three four", None]
    assert translator.usage.completion_tokens == 4


def test_error_rate_is_deterministic():
    provider = make(error_status=503, error_rate=0.25, retry_after=2)
    statuses = []
    for _ in range(8):
        _, (upstream, _) = run(provider, {"model": "x", "messages": [{"role": "user", "content": "q"}]})
        statuses.append(upstream.status)
    assert statuses.count(503) == 2
    assert make(error_status=429, retry_after=2).config.option("retry_after") == 2


def test_embeddings_deterministic_and_base64():
    provider = make()
    call = Call(body={"model": "e", "input": ["a", "b"], "dimensions": 4, "encoding_format": "base64"}, model="e", endpoint="embeddings")

    async def go():
        return await (await provider.serve(provider.build_embeddings(call))).read()
    body = orjson.loads(asyncio.run(go()))
    vector = struct.unpack("<4f", base64.b64decode(body["data"][0]["embedding"]))
    assert [round(v, 5) for v in vector] == [round(v, 5) for v in embed("a", 4)]
    assert embed("a", 4) == embed("a", 4) and embed("a", 4) != embed("b", 4)
