"""End to end: the real gateway, the official openai SDK as client, the fake Perplexity API: the Agent API
(``api: agent``, translated both ways) and Sonar chat completions (``api: chat``)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.support import (UPSTREAM_TIMEOUT, admin, client_fixture, gateway_config, gateway_fixture,
                               one_deployment)
from tests.fakes.openai_family import Reply
from tests.fakes.perplexity import make_app, pplx_error
from tests.fakes.server import fresh_fixture, served_fixture
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "capital of France?"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": CITY}}]


def config(url: str) -> dict:
    provider = {"type": "perplexity", "api_base": url, "api_key": "test-key", "timeout": UPSTREAM_TIMEOUT}
    return gateway_config(
        providers={"pplx-agent": provider, "pplx-sonar": {**provider, "api": "chat"}},
        models={"agent": one_deployment("pplx-agent", "openai/gpt-5.1"),
                "agent-preset": one_deployment("pplx-agent", "preset:pro-search"),
                "sonar": one_deployment("pplx-sonar", "sonar-pro")})


upstream = served_fixture(lambda: make_app().state.fake)
gw = gateway_fixture(config)
client = client_fixture()
fake = fresh_fixture("upstream", autouse=True)


def test_agent_chat(client, fake):
    raw = client.chat.completions.with_raw_response.create(model="agent", messages=USER, max_tokens=100,
                                                           temperature=0.2)
    body = json.loads(raw.content)
    validate("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == "Hello from perplexity agent! You said: capital of France?"
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["prompt_tokens"] > 0
    sent = fake.received[-1]
    assert sent.path == "/v1/agent" and sent.headers["authorization"] == "Bearer test-key"
    assert sent.json["instructions"] == "Be brief." and sent.json["max_output_tokens"] == 100


def test_agent_search_fields_reach_the_client(client, fake):
    raw = client.chat.completions.with_raw_response.create(
        model="agent", messages=USER, web_search_options={}, extra_body={"search_recency_filter": "week"})
    body = json.loads(raw.content)
    validate("CreateChatCompletionResponse", body)
    assert body["citations"] == ["https://example.org/paris", "https://example.org/france"]
    assert body["search_results"][0]["title"] == "Paris"
    assert fake.received[-1].json["tools"] == [{"type": "web_search", "filters": {"search_recency_filter": "week"}}]
    chunks = list(client.chat.completions.create(model="agent-preset", messages=USER, stream=True))
    assert fake.received[-1].json["preset"] == "pro-search"
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["citations"]


def test_agent_stream_with_usage(client):
    chunks = list(client.chat.completions.create(model="agent", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello from perplexity agent! You said: capital of France?"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_agent_tool_round_trip(client, fake):
    first = client.chat.completions.create(model="agent", messages=USER, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.id == "call_pplx_1"
    assert fake.received[-1].json["tools"][0] == {"type": "function", "name": "get_weather", "description": "Weather",
                                                  "parameters": TOOLS[0]["function"]["parameters"]}
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model="agent", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool said: sunny"
    chunks = list(client.chat.completions.create(model="agent", messages=USER, tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id == "call_pplx_1" and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
def test_agent_failures_reported_with_http_200(client, stream):
    def ask(text):
        messages = [{"role": "user", "content": text}]
        if stream:
            return list(client.chat.completions.create(model="agent", messages=messages, stream=True))
        return client.chat.completions.create(model="agent", messages=messages)

    for text in ("FAIL_ME", "CANCEL_ME"):
        with pytest.raises(openai.APIError):
            ask(text)
    truncated = ask("TRUNCATE_ME")
    finish = truncated[-1].choices[0].finish_reason if stream else truncated.choices[0].finish_reason
    assert finish == "length"


def test_agent_unsupported_parameter(client, fake):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="agent", messages=USER, stop=["\n"])
    assert info.value.code == "unsupported_parameter" and info.value.param == "stop"
    assert not fake.received


def test_models_through_admin(gw, fake):
    response = admin(gw, "GET", "/admin/providers/pplx-agent/models")
    body = response.json()
    validate("ListModelsResponse", body)
    assert body["data"][0]["id"] == "perplexity/sonar" and fake.received[-1].path == "/v1/models"


def test_errors(client, fake):
    fake.push(Reply(429, pplx_error(429, "slow down", "request_rate_limit_exceeded"), {"retry-after": "17"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="agent", messages=USER)
    assert info.value.response.headers["retry-after"] == "17"
    fake.push(Reply(chunks=[{"type": "response.created", "sequence_number": 0,
                             "response": {"id": "r", "status": "in_progress", "model": "m", "output": []}},
                            {"type": "response.output_text.delta", "sequence_number": 1, "delta": "part"}],
                    done=False))
    with pytest.raises(openai.APIError):  # ends without a terminal event
        list(client.chat.completions.create(model="agent", messages=USER, stream=True))


def test_sonar_chat_and_stream(client, fake):
    raw = client.chat.completions.with_raw_response.create(model="sonar", messages=USER, max_completion_tokens=30)
    body = json.loads(raw.content)
    validate("CreateChatCompletionResponse", body)
    assert body["citations"] and body["search_results"]
    sent = fake.received[-1]
    assert sent.path == "/chat/completions" and sent.json["max_tokens"] == 30
    chunks = list(client.chat.completions.create(model="sonar", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        assert all("message" not in (c.model_extra or {}) for c in chunk.choices)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello from perplexity! You said: capital of France?"
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].model_extra["citations"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert "stream_options" not in fake.received[-1].json
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="sonar", messages=USER, tools=TOOLS)
    assert info.value.param == "tools"
