"""End to end: the real gateway process, the official openai SDK as client, the fake Cohere upstream."""

from __future__ import annotations

import base64
import json
from array import array

import openai
import pytest

from tests.e2e.support import (UPSTREAM_TIMEOUT, admin, client_fixture, gateway_config, gateway_fixture,
                               one_deployment, post, read_stream)
from tests.fakes.cohere import CohereFake
from tests.fakes.server import fresh_fixture, served_fixture
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

UPSTREAM_KEY = "co-upstream-key"
USER = [{"role": "user", "content": "hello cohere"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def config(url: str) -> dict:
    provider = {"type": "cohere", "api_base": url, "timeout": UPSTREAM_TIMEOUT}
    return gateway_config(
        providers={"cohere-main": {**provider, "api_key": UPSTREAM_KEY},
                   "cohere-badkey": {**provider, "api_key": "co-wrong-key"}},
        models={"command-a": one_deployment("cohere-main", "command-a-03-2025"),
                "embed": one_deployment("cohere-main", "embed-v4.0"),
                "command-badkey": one_deployment("cohere-badkey", "command-a-03-2025")})


upstream = served_fixture(lambda: CohereFake(valid_keys={UPSTREAM_KEY}))
gw = gateway_fixture(config)
client = client_fixture()
_reset = fresh_fixture("upstream", autouse=True)


def test_chat_non_streaming(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="command-a", messages=[{"role": "system", "content": "Be kind."}, *USER],
        temperature=0.3, top_p=0.8, max_tokens=20, stop=["END"], seed=5)
    validate("CreateChatCompletionResponse", json.loads(raw.content))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello cohere"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 71 and completion.usage.completion_tokens == 7  # floats cast
    sent = upstream.last("/v2/chat")
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json["model"] == "command-a-03-2025" and sent.json["p"] == 0.8
    assert sent.json["stop_sequences"] == ["END"] and sent.json["messages"][0]["role"] == "system"


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(model="command-a", messages=USER, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello cohere"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 78


def test_tool_round_trip(client, upstream):
    upstream.reply(tool_calls=[{"id": "get_weather_x1", "name": "get_weather", "arguments": '{"city":"Paris"}'}])
    first = client.chat.completions.create(model="command-a", messages=USER, tools=TOOLS,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == \
        ("get_weather_x1", "get_weather", {"city": "Paris"})
    assert upstream.last("/v2/chat").json["tool_choice"] == "REQUIRED"
    upstream.reply("It is sunny in Paris.")
    second = client.chat.completions.create(model="command-a", tools=TOOLS, messages=[
        *USER, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert second.choices[0].message.content == "It is sunny in Paris."
    sent = upstream.last("/v2/chat").json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {"role": "tool", "tool_call_id": call.id,
                                                                     "content": "sunny"}


def test_streamed_tool_call(client, upstream):
    upstream.reply(tool_calls=[{"id": "t1", "name": "get_weather", "arguments": '{"city":"Rome, Italy"}'}])
    chunks = list(client.chat.completions.create(model="command-a", messages=USER, tools=TOOLS, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "t1" and calls[0].function.name == "get_weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city":"Rome, Italy"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_image_input(client, upstream):
    completion = client.chat.completions.create(model="command-a", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert completion.choices[0].message.content == "Echo: what is this [1 image(s)]"
    part = upstream.last("/v2/chat").json["messages"][0]["content"][1]
    assert part == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_embeddings_float_and_base64(client, gw, upstream):
    floats = client.embeddings.create(model="embed", input=["alpha", "beta"], encoding_format="float", dimensions=4)
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 4
    sent = upstream.last("/v2/embed").json
    assert sent["input_type"] == "search_document" and sent["output_dimension"] == 4 and sent["texts"] == ["alpha",
                                                                                                           "beta"]
    default = client.embeddings.create(model="embed", input="alpha", dimensions=4)  # the SDK asks for base64
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    plain = post(gw, "/v1/embeddings", {"model": "embed", "input": "alpha"}).json()
    validate("CreateEmbeddingResponse", plain)  # the schema knows only the float form
    packed = post(gw, "/v1/embeddings", {"model": "embed", "input": "alpha", "encoding_format": "base64"}).json()
    decoded = array("f", base64.b64decode(packed["data"][0]["embedding"])).tolist()
    assert decoded == pytest.approx(plain["data"][0]["embedding"], abs=1e-6)
    assert len(decoded) == 8 and packed["usage"]["prompt_tokens"] == 1


def test_models_through_admin(gw):
    response = admin(gw, "GET", "/admin/providers/cohere-main/models")
    assert response.status_code == 200
    body = response.json()
    validate("ListModelsResponse", body)
    assert [m["id"] for m in body["data"]] == ["command-a-03-2025", "command-a-vision-07-2025", "embed-v4.0"]


def test_invalid_upstream_key(client):
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="command-badkey", messages=USER)
    assert info.value.code == "invalid_api_key"
    assert "co-wrong-key" not in str(info.value.body)


def test_rate_limit_keeps_retry_after(client, upstream):
    upstream.error(429, {"message": "trial key limit"}, {"retry-after": "17"})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="command-a", messages=USER)
    assert info.value.response.headers["retry-after"] == "17"


def test_context_length(client, upstream):
    upstream.error(400, {"message": "too many tokens: total number of tokens in the prompt cannot exceed 256000"})
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="command-a", messages=USER)
    assert info.value.code == "context_length_exceeded" and info.value.param == "messages"


def test_payment_required_is_insufficient_quota(client, upstream):
    upstream.error(402, {"message": "Please add a payment method"})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="command-a", messages=USER)
    assert info.value.code == "insufficient_quota"


@pytest.mark.parametrize(("status", "code", "gateway_status"), [(500, "upstream_error", 502), (503, "overloaded", 503)])
def test_server_errors(client, upstream, status, code, gateway_status):
    upstream.error(status, {"message": "internal failure"})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="command-a", messages=USER)
    assert info.value.status_code == gateway_status and info.value.code == code


def test_unsupported_parameter(client, upstream):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="command-a", messages=USER, user="someone")
    assert info.value.code == "unsupported_parameter" and info.value.param == "user"
    assert not upstream.received  # rejected before any upstream call


@pytest.mark.parametrize("abort", [False, True])
def test_stream_cut_midway(gw, client, upstream, abort):
    upstream.reply("one two three four five six seven eight", cut_after=4, abort=abort)
    _, lines = read_stream(gw, {"model": "command-a", "messages": USER, "stream": True})
    assert "data: [DONE]" not in lines
    assert any('"content"' in line for line in lines[:-1])  # the text before the cut was relayed
    assert json.loads(lines[-1][6:])["error"]["type"] == "server_error"
    upstream.cut_stream(after_events=3, abort=abort)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="command-a", messages=USER, stream=True))
    assert client.chat.completions.create(model="command-a", messages=USER).choices  # still healthy
