"""End to end: the real gateway, the official openai SDK as client, the fake Mistral API."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.support import (UPSTREAM_TIMEOUT, admin, client_fixture, gateway_config, gateway_fixture,
                               one_deployment, post)
from tests.fakes.mistral import make_app, mistral_chunk, mistral_error
from tests.fakes.openai_family import CREATED, Reply
from tests.fakes.server import fresh_fixture, served_fixture
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hello mistral"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": CITY}}]


def config(url: str) -> dict:
    provider = {"type": "mistral", "api_base": url + "/v1", "timeout": UPSTREAM_TIMEOUT}
    return gateway_config(
        providers={"mistral-main": {**provider, "api_key": "test-key", "safe_prompt": True},
                   "mistral-badkey": {**provider, "api_key": "wrong-key-123"}},
        models={"large": one_deployment("mistral-main", "mistral-large-latest"),
                "embed": one_deployment("mistral-main", "mistral-embed"),
                "large-badkey": one_deployment("mistral-badkey", "mistral-large-latest")})


upstream = served_fixture(lambda: make_app().state.fake)
gw = gateway_fixture(config)
client = client_fixture()
fake = fresh_fixture("upstream", autouse=True)


def test_chat_maps_params(client, fake):
    raw = client.chat.completions.with_raw_response.create(model="large", messages=USER, seed=7, user="u-1",
                                                           max_completion_tokens=40)
    body = json.loads(raw.content)
    validate("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == "Hello from mistral! You said: hello mistral"
    sent = fake.received[-1].json
    assert sent["random_seed"] == 7 and sent["max_tokens"] == 40 and sent["safe_prompt"] is True
    assert not {"seed", "user", "max_completion_tokens", "stream_options"} & set(sent)


def test_stream_with_usage(client, fake):
    chunks = list(client.chat.completions.create(model="large", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello from mistral! You said: hello mistral"
    assert all(c.usage is None for c in chunks[:-1])  # usage moved off Mistral's last choice chunk
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert "stream_options" not in fake.received[-1].json
    plain = list(client.chat.completions.create(model="large", messages=USER, stream=True))
    assert all(c.usage is None for c in plain) and all(c.choices for c in plain)


def test_tool_round_trip_with_foreign_ids(client, fake):
    first = client.chat.completions.create(model="large", messages=USER, tools=TOOLS, tool_choice="required")
    assert fake.received[-1].json["tool_choice"] == "any"
    mistral_id = first.choices[0].message.tool_calls[0].id
    assert len(mistral_id) == 9  # Mistral's own ids pass back unchanged
    client_id = "call_a1b2c3d4e5f6g7h8"  # an id from another provider: Mistral would refuse it
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": client_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": client_id, "content": "sunny"}]
    second = client.chat.completions.create(model="large", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool said: sunny"
    sent = fake.received[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] != client_id
    # the mapped id coming back (a model echoing a call) is restored to the client's own
    fake.push(Reply(body={"id": "x", "object": "chat.completion", "created": CREATED, "model": "mistral-large-latest",
                          "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                              "role": "assistant", "content": "", "tool_calls": [
                                  {"id": sent[2]["tool_call_id"], "function": {"name": "get_weather",
                                                                               "arguments": {"city": "Paris"}}}]}}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))
    third = client.chat.completions.create(model="large", messages=messages, tools=TOOLS)
    assert third.choices[0].message.tool_calls[0].id == client_id
    assert third.choices[0].message.tool_calls[0].function.arguments == '{"city":"Paris"}'


def test_streamed_tool_call(client):
    chunks = list(client.chat.completions.create(model="large", messages=USER, tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].index == 0 and len(deltas[0].id) == 9
    assert json.loads("".join(d.function.arguments for d in deltas)) == {"city": "Paris"}


def test_finish_reasons(client, fake):
    fake.push(Reply(chunks=[mistral_chunk({"role": "assistant", "content": "cut"}),
                            mistral_chunk({}, "model_length")]))
    chunks = list(client.chat.completions.create(model="large", messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == "length"
    fake.push(Reply(chunks=[mistral_chunk({"role": "assistant", "content": "oops"}), mistral_chunk({}, "error")]))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="large", messages=USER, stream=True))


def test_embeddings(client, gw, fake):
    packed = client.embeddings.create(model="embed", input=["alpha", "beta"], dimensions=4)
    assert len(packed.data) == 2 and len(packed.data[0].embedding) == 4
    assert fake.received[-1].json["output_dimension"] == 4
    plain = post(gw, "/v1/embeddings", {"model": "embed", "input": "alpha", "encoding_format": "float"}).json()
    validate("CreateEmbeddingResponse", plain)


def test_models_through_admin(gw):
    response = admin(gw, "GET", "/admin/providers/mistral-main/models")
    body = response.json()
    validate("ListModelsResponse", body)
    assert body["data"][0]["id"] == "mistral-large-latest" and body["data"][0]["capabilities"]["function_calling"]


def test_errors(client, fake):
    fake.push(Reply(429, mistral_error(429, "Requests rate limit exceeded", "rate_limit_error"), {"retry-after": "17"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="large", messages=USER)
    assert info.value.response.headers["retry-after"] == "17"
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="large-badkey", messages=USER)
    fake.push(Reply(422, {"detail": [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required"}]}))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="large", messages=USER)
    assert info.value.param == "messages" and "Field required" in info.value.message
    fake.push(Reply(400, mistral_error(400, "Prompt contains 200000 tokens, too large for model with 131072 "
                                            "maximum context length")))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="large", messages=USER)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:  # Mistral's role rule, in its flat error shape
        client.chat.completions.create(model="large", messages=[*USER, {"role": "assistant", "content": "x"}])
    assert "Expected last role" in info.value.message


def test_stream_cut_midway(client, fake):
    fake.push(Reply(chunks=[mistral_chunk({"role": "assistant", "content": "partial"})], cut=1))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="large", messages=USER, stream=True))
