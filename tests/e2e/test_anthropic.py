"""End to end: the real gateway process, the official openai SDK as client, the fake Anthropic API
(tests/fakes/anthropic.py) as upstream. Every answer is checked against OpenAI's schemas."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.e2e.support import admin, client_fixture, gateway_config, gateway_fixture, one_deployment, read_stream
from tests.fakes.anthropic import API_KEY, Fail, Reply, create_app, text, thinking, tool_use
from tests.fakes.server import served_fixture
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

MODEL = "claude"
UPSTREAM_MODEL = "claude-sonnet-4-6"
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}]
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def config(url: str) -> dict:
    provider = {"type": "anthropic", "api_base": url, "api_key": API_KEY, "default_max_tokens": 1024,
                "timeout": {"connect": 2, "read": 10, "total": 30}}
    return gateway_config(
        providers={"claude-main": provider, "claude-badkey": {**provider, "api_key": "sk-ant-wrong-key-123456"}},
        models={MODEL: one_deployment("claude-main", UPSTREAM_MODEL),
                "claude-badkey": one_deployment("claude-badkey", UPSTREAM_MODEL)})


upstream = served_fixture(lambda: create_app().state.fake)
gw = gateway_fixture(config)
client = client_fixture()


@pytest.fixture(autouse=True)
def fake(upstream):
    upstream.reset()
    yield upstream
    upstream.reset()


def ask(client, **kwargs):
    params = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    params.update(kwargs)
    return client.chat.completions.with_raw_response.create(**params)


# -- chat -------------------------------------------------------------------------------------------


def test_chat_non_streaming(client, fake):
    fake.push(Reply(content=[thinking("hmm"), text("Bonjour!")],
                    usage={"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 6}))
    raw = ask(client, messages=[{"role": "system", "content": "Speak French."}, {"role": "user", "content": "Hi"}],
              temperature=1.8, top_p=0.5, stop=["END"], user="u-1")
    validate("CreateChatCompletionResponse", json.loads(raw.content))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Bonjour!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == UPSTREAM_MODEL
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (16, 4)
    assert completion.usage.prompt_tokens_details.cached_tokens == 6
    sent = fake.messages_requests()[-1]
    assert sent.headers["x-api-key"] == API_KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert MASTER_KEY not in json.dumps(sent.headers)
    assert sent.json == {"model": UPSTREAM_MODEL, "system": "Speak French.", "messages": [{"role": "user", "content": "Hi"}],
                         "max_tokens": 1024, "temperature": 1.0, "stop_sequences": ["END"],
                         "metadata": {"user_id": "u-1"}}


def test_streaming_with_usage(client, fake):
    fake.push(Reply(content=[thinking("let me think"), text("Hello there, how are you?")], chunk=5,
                    usage={"input_tokens": 20, "output_tokens": 11}))
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there, how are you?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 31
    assert fake.messages_requests()[-1].json["stream"] is True


def test_streaming_raw_frames_end_with_done(gw, fake):
    response, lines = read_stream(gw, {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        chunk = json.loads(line[6:])
        validate("CreateChatCompletionStreamResponse", chunk)
        assert "usage" not in chunk


def test_tool_call_round_trip(client, fake):
    fake.push(Reply(content=[text("Let me check."), tool_use("get_weather", {"city": "Paris"}, "toolu_01A"),
                             tool_use("get_weather", {"city": "Rome"}, "toolu_01B")], stop_reason="tool_use"),
              Reply(content=[text("Sunny in Paris, rainy in Rome.")]))
    question = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    raw = ask(client, messages=question, tools=WEATHER, tool_choice="required")
    validate("CreateChatCompletionResponse", json.loads(raw.content))
    first = raw.parse()
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [("toolu_01A", {"city": "Paris"}),
                                                                         ("toolu_01B", {"city": "Rome"})]
    assert fake.messages_requests()[-1].json["tool_choice"] == {"type": "any"}
    history = [*question, first.choices[0].message.model_dump(exclude_none=True)]
    history += [{"role": "tool", "tool_call_id": c.id, "content": f"{c.id}: ok"} for c in calls]
    final = ask(client, messages=history, tools=WEATHER).parse()
    assert final.choices[0].message.content == "Sunny in Paris, rainy in Rome."
    sent = fake.messages_requests()[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["type"] for b in sent[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "toolu_01A: ok"},
                                  {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "toolu_01B: ok"}]


def test_streamed_tool_calls(client, fake):
    fake.push(Reply(content=[tool_use("get_weather", {"city": "Paris"}, "toolu_1"),
                             tool_use("get_weather", {"city": "Oslo"}, "toolu_2")], stop_reason="tool_use", chunk=3))
    arguments: dict[int, str] = {}
    ids = {}
    finish = None
    for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "w"}],
                                                tools=WEATHER, stream=True):
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
                if delta.id:
                    ids[delta.index] = delta.id
            finish = choice.finish_reason or finish
    assert ids == {0: "toolu_1", 1: "toolu_2"}
    assert [json.loads(arguments[i]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert finish == "tool_calls"


def test_image_input(client, fake):
    content = [{"type": "text", "text": "What are these?"}, {"type": "image_url", "image_url": {"url": PNG}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    completion = ask(client, messages=[{"role": "user", "content": content}]).parse()
    assert completion.choices[0].message.content == "You said: What are these?"
    blocks = fake.messages_requests()[-1].json["messages"][0]["content"]
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG.split(",", 1)[1]}
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


def test_structured_output(client, fake):
    fake.push(Reply(content=[text('{"name": "Ada"}')]))
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
              "additionalProperties": False}
    completion = ask(client, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}).parse()
    assert json.loads(completion.choices[0].message.content) == {"name": "Ada"}
    assert fake.messages_requests()[-1].json["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_unsupported_parameter_is_refused_before_the_upstream(client, fake):
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, n=2)
    assert err.value.code == "unsupported_parameter" and err.value.param == "n"
    assert fake.messages_requests() == []


# -- errors -----------------------------------------------------------------------------------------


def test_rate_limit_keeps_retry_after(client, fake):
    fake.push(Fail(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as err:
        ask(client)
    assert err.value.status_code == 429 and err.value.code == "rate_limit_exceeded"
    assert err.value.response.headers["retry-after"] == "7"


def test_overloaded_is_503(client, fake):
    fake.push(Fail(529, "overloaded_error", "Overloaded"))
    with pytest.raises(openai.InternalServerError) as err:
        ask(client)
    assert err.value.status_code == 503 and err.value.code == "overloaded"


def test_prompt_too_long_is_context_length_exceeded(client, fake):
    fake.push(Fail(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"))
    with pytest.raises(openai.BadRequestError) as err:
        ask(client)
    assert err.value.code == "context_length_exceeded" and err.value.param == "messages"


def test_bad_upstream_key_is_invalid_api_key_without_the_key(client, fake):
    with pytest.raises(openai.AuthenticationError) as err:
        ask(client, model="claude-badkey")
    assert err.value.code == "invalid_api_key"
    assert "sk-ant-wrong-key" not in err.value.message and API_KEY not in err.value.message
    assert "sk-ant-wrong-key" not in err.value.response.text


def test_billing_is_insufficient_quota(client, fake):
    fake.push(Fail(402, "billing_error", "Your credit balance is too low to access the Anthropic API."))
    with pytest.raises(openai.RateLimitError) as err:
        ask(client)
    assert err.value.code == "insufficient_quota" and err.value.type == "insufficient_quota"


def test_error_event_mid_stream(client, fake):
    fake.push(Reply(content=[text("This answer will not finish")], chunk=3, error_after=6))
    with pytest.raises(openai.APIError) as err:
        for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                    stream=True):
            validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert err.value.code == "overloaded"


def test_error_event_before_any_content_fails_the_request(client, fake):
    fake.push(Reply(content=[text("never")], error_after=1, error=("rate_limit_error", "Too many requests")))
    with pytest.raises(openai.RateLimitError) as err:
        list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert err.value.status_code == 429


def test_stream_cut_midway_then_gateway_still_healthy(gw, client, fake):
    fake.push(Reply(content=[text("one two three four five")], chunk=3, cut_after=6))
    _, lines = read_stream(gw, {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    assert "data: [DONE]" not in lines
    assert json.loads(lines[-1][6:])["error"]["code"] == "upstream_error"
    fake.push(Reply(content=[text("one two three four five")], chunk=3, cut_after=6))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert ask(client).parse().choices[0].message.content == "You said: Hi"


# -- model discovery --------------------------------------------------------------------------------


def test_admin_provider_models(gw, fake):
    response = admin(gw, "GET", "/admin/providers/claude-main/models")
    assert response.status_code == 200, response.text
    validate("ListModelsResponse", response.json())
    models = response.json()["data"]
    assert [m["id"] for m in models] == ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7"]
    assert models[0]["owned_by"] == "anthropic" and models[0]["created"] > 1_700_000_000
    sent = fake.received[-1]
    assert (sent.path, sent.query.get("limit")) == ("/v1/models", "1000")
