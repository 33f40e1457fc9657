"""End to end: the real gateway process, the official openai SDK as client, the strict Gemini fake upstream."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.e2e.support import (UPSTREAM_TIMEOUT, admin, client_fixture, gateway_config, gateway_fixture,
                               one_deployment, post, read_stream)
from tests.fakes.gemini import GeminiFake, Reply, error_body
from tests.fakes.server import served_fixture
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)
UPSTREAM_KEY = "gemini-upstream-key"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def gemini_config(url: str) -> dict:
    provider = {"type": "gemini", "api_base": url, "timeout": UPSTREAM_TIMEOUT}
    return gateway_config(
        providers={
            "gemini-main": {**provider, "api_key": UPSTREAM_KEY, "embedding_task_type": "RETRIEVAL_DOCUMENT"},
            "gemini-badkey": {**provider, "api_key": "not-the-key"},
        },
        models={
            "flash": one_deployment("gemini-main", "gemini-2.5-flash"),
            "gemini-3": one_deployment("gemini-main", "gemini-3-pro-preview"),
            "embed": one_deployment("gemini-main", "gemini-embedding-001"),
            "badkey": one_deployment("gemini-badkey", "gemini-2.5-flash"),
        })


upstream = served_fixture(lambda: GeminiFake(UPSTREAM_KEY))
gw = gateway_fixture(gemini_config)
client = client_fixture()


@pytest.fixture(autouse=True)
def fake(upstream):
    upstream.reset()
    upstream.max_input_tokens = 1_000_000
    yield upstream
    upstream.replies.clear()


def stream_lines(gw, body):
    response, lines = read_stream(gw, body)
    assert response.status_code == 200
    return lines


# -- chat ---------------------------------------------------------------------------------------------

def test_chat_non_streaming(client, fake):
    fake.replies.append(Reply(text="Bonjour tout le monde", thoughts="They want French"))
    raw = client.chat.completions.with_raw_response.create(
        model="flash", messages=[{"role": "system", "content": "Answer in French."},
                                 {"role": "user", "content": "Say hello to everyone"}],
        temperature=0.3, max_tokens=100, stop=["END"], seed=1)
    validate("CreateChatCompletionResponse", json.loads(raw.content))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Bonjour tout le monde"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gemini-2.5-flash"
    assert completion.usage.completion_tokens == 4 + 3 and completion.usage.completion_tokens_details.reasoning_tokens == 3
    sent = fake.received[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == UPSTREAM_KEY and MASTER_KEY not in str(sent.headers)
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}
    assert sent.json["generationConfig"] == {"temperature": 0.3, "seed": 1, "maxOutputTokens": 100,
                                             "stopSequences": ["END"]}


def test_streaming_with_usage(gw, client, fake):
    fake.replies.append(Reply(text="one two three four five"))
    chunks = list(client.chat.completions.create(model="flash", messages=[{"role": "user", "content": "count"}],
                                                 stream=True, stream_options={"include_usage": True}))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four five"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert fake.received[-1].query == {"alt": "sse"}
    fake.replies.append(Reply(text="plain"))
    lines = stream_lines(gw, {"model": "flash", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert lines[-1] == "data: [DONE]" and all('"usage"' not in line for line in lines)


def tool_round(client, fake, first_turn):
    """Ask, get two parallel calls, answer both; the fake checks the thoughtSignature came back intact."""
    question = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    message, calls = first_turn(question)
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    history = question + [message] + [{"role": "tool", "tool_call_id": c["id"], "content": f"sunny in {i}"}
                                      for i, c in enumerate(calls)]
    fake.replies.append(Reply(text="Sunny in both."))
    final = client.chat.completions.create(model="gemini-3", messages=history, tools=TOOLS)
    assert final.choices[0].message.content == "Sunny in both."
    model_turn = fake.received[-1].json["contents"][1]
    signature = model_turn["parts"][0]["thoughtSignature"]
    assert fake.issued[signature] == 'get_weather{"city":"Paris"}'
    assert "thoughtSignature" not in model_turn["parts"][1]
    assert fake.received[-1].json["contents"][2]["parts"][1] == {
        "functionResponse": {"name": "get_weather", "response": {"result": "sunny in 1"}}}
    return history


def test_tool_call_round_trip_keeps_thought_signature(client, fake):
    def first_turn(question):
        fake.replies.append(Reply(calls=[{"name": "get_weather", "args": {"city": "Paris"}},
                                         {"name": "get_weather", "args": {"city": "Rome"}}]))
        first = client.chat.completions.with_raw_response.create(model="gemini-3", messages=question, tools=TOOLS,
                                                                 tool_choice="required")
        validate("CreateChatCompletionResponse", json.loads(first.content))
        choice = first.parse().choices[0]
        assert choice.finish_reason == "tool_calls"
        message = choice.message.model_dump(exclude_none=True)
        return message, message["tool_calls"]

    history = tool_round(client, fake, first_turn)
    # a client that loses the signature is refused by Gemini 3, and the gateway says so
    history[1]["tool_calls"][0]["id"] = history[1]["tool_calls"][0]["id"].split("__ts_")[0]
    history[2]["tool_call_id"] = history[1]["tool_calls"][0]["id"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini-3", messages=history, tools=TOOLS)
    assert "thought_signature" in err.value.message


def test_streamed_tool_calls_round_trip(client, fake):
    def first_turn(question):
        fake.replies.append(Reply(calls=[{"name": "get_weather", "args": {"city": "Paris"}},
                                         {"name": "get_weather", "args": {"city": "Rome"}}]))
        calls: dict[int, dict] = {}
        finish = None
        for chunk in client.chat.completions.create(model="gemini-3", messages=question, tools=TOOLS, stream=True):
            validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
            for delta in chunk.choices[0].delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": delta.id, "type": "function",
                                                      "function": {"name": delta.function.name, "arguments": ""}})
                call["function"]["arguments"] += delta.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls"
        ordered = [calls[i] for i in sorted(calls)]
        return {"role": "assistant", "content": None, "tool_calls": ordered}, ordered

    tool_round(client, fake, first_turn)


def test_image_input(client, fake):
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    client.chat.completions.create(model="flash", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": png}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    parts = fake.received[-1].json["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": png.split(",", 1)[1]}}
    assert parts[2] == {"fileData": {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg"}}


# -- embeddings and models ------------------------------------------------------------------------------

def test_embeddings(gw, client, fake):
    result = client.embeddings.create(model="embed", input=["alpha", "beta gamma"], dimensions=16)  # base64 on the wire
    validate("CreateEmbeddingResponse", result.model_dump())
    assert [len(item.embedding) for item in result.data] == [16, 16]
    sent = fake.received[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.json["requests"][1] == {"model": "models/gemini-embedding-001", "content": {"parts": [
        {"text": "beta gamma"}]}, "outputDimensionality": 16, "taskType": "RETRIEVAL_DOCUMENT"}
    floats = client.embeddings.create(model="embed", input="alpha", encoding_format="float", dimensions=16)
    assert floats.data[0].embedding == result.data[0].embedding
    response = post(gw, "/v1/embeddings", {"model": "embed", "input": "alpha", "encoding_format": "base64"})
    packed = base64.b64decode(response.json()["data"][0]["embedding"])
    assert list(struct.unpack("<8f", packed)) == floats.data[0].embedding[:8]  # the fake's default is 8 dims


def test_model_discovery(gw, fake):
    response = admin(gw, "GET", "/admin/providers/gemini-main/models")
    assert response.status_code == 200, response.text
    validate("ListModelsResponse", response.json())
    assert [m["id"] for m in response.json()["data"]] == ["gemini-2.5-flash", "gemini-3-pro-preview",
                                                          "gemini-embedding-001"]
    assert fake.received[-1].path == "/v1beta/models"


# -- errors -------------------------------------------------------------------------------------------

def test_bad_upstream_key_is_401(client):
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="badkey", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert "not-the-key" not in err.value.message


def test_rate_limit_keeps_retry_after(client, fake):
    fake.replies.append(Reply(status=429, body=error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
                              headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="flash", messages=[{"role": "user", "content": "hi"}])
    assert err.value.response.headers["retry-after"] == "7" and err.value.code == "rate_limit_exceeded"


def test_unavailable_is_503_overloaded(client, fake):
    fake.replies.append(Reply(status=503, body=error_body(503, "UNAVAILABLE", "The model is overloaded.")))
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="flash", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 503 and err.value.code == "overloaded"


def test_context_length_exceeded(client, fake):
    fake.max_input_tokens = 3
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="flash", messages=[{"role": "user", "content": "far too many words here"}])
    assert err.value.code == "context_length_exceeded" and err.value.param == "messages"


def test_error_event_inside_stream(gw, client, fake):
    fake.replies.append(Reply(text="one two three", stream_error={"code": 500, "message": "Internal error",
                                                                   "status": "INTERNAL"}))
    lines = stream_lines(gw, {"model": "flash", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert "data: [DONE]" not in lines
    assert json.loads(lines[-2][6:])["choices"][0]["delta"] == {"content": "one two"}
    assert json.loads(lines[-1][6:])["error"]["code"] == "upstream_error"


@pytest.mark.parametrize("cut", ["clean", "abort"])
def test_stream_cut_midway(gw, client, fake, cut):
    fake.replies.append(Reply(text="one two three four five", cut=cut))
    lines = stream_lines(gw, {"model": "flash", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert "data: [DONE]" not in lines
    assert json.loads(lines[-1][6:])["error"]["code"] == "upstream_error"
    fake.replies.append(Reply(text="one two three four five", cut=cut))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="flash", messages=[{"role": "user", "content": "x"}], stream=True))
    assert client.chat.completions.create(model="flash", messages=[{"role": "user", "content": "x"}]).choices
