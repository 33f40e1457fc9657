"""The fake Anthropic API, checked with the official ``anthropic`` SDK (if the SDK cannot parse the
fake's answers, the fake is wrong) and with raw HTTP for what it must reject."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tests.fakes.anthropic import API_KEY, Fail, Reply, serve, text, thinking, tool_use

pytestmark = pytest.mark.timeout(30)

WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.fixture(scope="module")
def running():
    with serve() as (server, fake):
        yield server, fake


@pytest.fixture()
def fake(running):
    running[1].reset()
    return running[1]


@pytest.fixture()
def client(running):
    with anthropic.Anthropic(api_key=API_KEY, base_url=running[0].url, max_retries=0, timeout=10) as sdk:
        yield sdk


@pytest.fixture()
def http(running):
    with httpx2.Client(base_url=running[0].url, timeout=10) as raw:
        yield raw


def ask(client, **kwargs):
    params = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
    params.update(kwargs)
    return client.messages.create(**params)


def test_chat(client, fake):
    fake.push(Reply(content=[text("Bonjour")], usage={"input_tokens": 9, "output_tokens": 2,
                                                     "cache_read_input_tokens": 4}))
    message = ask(client, system="Be French", extra_body={"temperature": 0.5})
    assert message.content[0].text == "Bonjour"
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-sonnet-4-6"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 2)
    assert message.usage.cache_read_input_tokens == 4
    request = fake.messages_requests()[-1]
    assert request.json["system"] == "Be French"
    # the SDK sends its key as a Bearer token and a newer anthropic-version: both accepted
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["anthropic-version"] >= "2023-06-01"


def test_default_reply_echoes(client, fake):
    assert ask(client).content[0].text == "You said: Hi"


def test_stream_text(client, fake):
    fake.push(Reply(content=[thinking("hmm"), text("Hello there, friend")], chunk=3,
                    usage={"input_tokens": 5, "output_tokens": 6}))
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=50,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        assert "".join(stream.text_stream) == "Hello there, friend"
        final = stream.get_final_message()
    assert final.content[0].thinking == "hmm"
    assert final.usage.output_tokens == 6
    assert final.stop_reason == "end_turn"


def test_stream_tool_use(client, fake):
    fake.push(Reply(content=[text("Checking."), tool_use("get_weather", {"city": "Paris"})], stop_reason="tool_use"))
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=50, tools=[WEATHER_TOOL],
                                messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = stream.get_final_message()
    assert final.content[1].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_tool_round_trip(client, fake):
    fake.push(Reply(content=[tool_use("get_weather", {"city": "Paris"}, "toolu_A"),
                             tool_use("get_weather", {"city": "Rome"}, "toolu_B")], stop_reason="tool_use"),
              Reply(content=[text("Sunny in both.")]))
    first = ask(client, tools=[WEATHER_TOOL], tool_choice={"type": "any"},
                messages=[{"role": "user", "content": "Weather in Paris and Rome?"}])
    assert [block.id for block in first.content] == ["toolu_A", "toolu_B"]
    history = [{"role": "user", "content": "Weather in Paris and Rome?"},
               {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "sunny"},
                                            {"type": "tool_result", "tool_use_id": "toolu_B", "content": "sunny"}]}]
    assert ask(client, tools=[WEATHER_TOOL], messages=history).content[0].text == "Sunny in both."


def test_models(client, fake):
    ids = [model.id for model in client.models.list(limit=2)]  # auto-paginates with after_id
    assert ids == ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7"]
    assert client.models.retrieve("claude-haiku-4-5").display_name == "Claude Haiku 4.5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")


@pytest.mark.parametrize(("status", "kind", "exc"), [
    (429, "rate_limit_error", anthropic.RateLimitError),
    (529, "overloaded_error", anthropic.OverloadedError),
    (402, "billing_error", anthropic.APIStatusError),
    (400, "invalid_request_error", anthropic.BadRequestError),
])
def test_scripted_errors(client, fake, status, kind, exc):
    fake.push(Fail(status, kind, "scripted", headers={"retry-after": "7"}))
    with pytest.raises(exc) as info:
        ask(client)
    assert info.value.status_code == status
    assert info.value.body["error"]["type"] == kind
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.request_id.startswith("req_")


def test_wrong_key(running, fake):
    with anthropic.Anthropic(api_key="sk-ant-wrong", base_url=running[0].url, max_retries=0) as sdk:
        with pytest.raises(anthropic.AuthenticationError):
            ask(sdk)


def test_error_event_mid_stream(client, fake):
    fake.push(Reply(content=[text("partial answer here")], error_after=4))
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=50,
                                    messages=[{"role": "user", "content": "Hi"}]) as stream:
            for _ in stream:
                pass
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_cut_stream_has_no_message_stop(client, fake):
    fake.push(Reply(content=[text("partial answer here")], cut_after=5))
    events = list(client.messages.create(model="claude-sonnet-4-6", max_tokens=50, stream=True,
                                         messages=[{"role": "user", "content": "Hi"}]))
    assert events and events[-1].type == "content_block_delta"


# -- what the fake rejects (raw HTTP, the way the gateway talks to it) ------------------------------

GOOD_HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
GOOD_BODY = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}


def post(http, body=None, headers=None):
    return http.post("/v1/messages", json=GOOD_BODY if body is None else body,
                     headers=GOOD_HEADERS if headers is None else headers)


def test_accepts_x_api_key(http, fake):
    response = post(http)
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "You said: Hi"


@pytest.mark.parametrize(("headers", "status", "kind"), [
    ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
    ({"x-api-key": "nope", "anthropic-version": "2023-06-01"}, 401, "authentication_error"),
    ({"x-api-key": API_KEY}, 400, "invalid_request_error"),
    ({"x-api-key": API_KEY, "anthropic-version": "latest"}, 400, "invalid_request_error"),
])
def test_rejects_headers(http, fake, headers, status, kind):
    response = post(http, headers=headers)
    assert response.status_code == status
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == kind


def with_(**changes):
    body = {**GOOD_BODY, **changes}
    return {k: v for k, v in body.items() if v is not None}


ASSISTANT_TOOL = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]}


@pytest.mark.parametrize(("body", "needle"), [
    (with_(max_tokens=None), "max_tokens: Field required"),
    (with_(temperature=1.5), "temperature"),
    (with_(top_p=-0.1), "top_p"),
    (with_(temperature=0.5, top_p=0.9), "cannot both be specified"),
    (with_(n=2), "n: Extra inputs are not permitted"),
    (with_(messages=[]), "at least one message"),
    (with_(messages=[{"role": "assistant", "content": "Hi"}]), "first message"),
    (with_(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]), "alternate"),
    (with_(messages=[{"role": "system", "content": "a"}]), "role"),
    (with_(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]), "non-empty"),
    (with_(messages=[{"role": "user", "content": "a"}, ASSISTANT_TOOL, {"role": "user", "content": "b"}]),
     "without `tool_result`"),
    (with_(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]), "unexpected"),
    (with_(messages=[{"role": "user", "content": "a"}, ASSISTANT_TOOL,
                     {"role": "user", "content": [{"type": "text", "text": "b"},
                                                  {"type": "tool_result", "tool_use_id": "toolu_1"}]}]), "first"),
    (with_(messages=[{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/bmp", "data": "AA=="}}]}]), "media_type"),
    (with_(tools=[{"name": "bad name", "input_schema": {"type": "object"}}]), "tools.0.name"),
    (with_(tools=[{"name": "f", "parameters": {"type": "object"}}]), "input_schema"),
    (with_(tool_choice={"type": "required"}), "tool_choice"),
    (with_(metadata={"user": "x"}), "metadata"),
    (with_(output_config={"format": {"type": "json_object"}}), "output_config.format"),
])
def test_rejects_bodies(http, fake, body, needle):
    response = post(http, body=body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_sdk_surfaces_validation_errors(client, fake):
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(client, extra_body={"temperature": 2.0})
    assert "temperature" in info.value.message
