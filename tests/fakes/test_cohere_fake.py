"""The official ``cohere`` SDK parses the fake's answers: if it cannot, the fake is wrong."""

from __future__ import annotations

import cohere
import httpx
import pytest

from tests.fakes.cohere import CohereFake
from tests.fakes.server import fresh_fixture, served_fixture

pytestmark = pytest.mark.timeout(30)


served = served_fixture(lambda: CohereFake(valid_keys={"co-test-key"}))
fake = fresh_fixture()


def make_client(url: str, key: str, http: httpx.Client) -> cohere.ClientV2:
    return cohere.ClientV2(api_key=key, base_url=url, max_retries=0, timeout=10, httpx_client=http)


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:  # closed here: the SDK never closes its own
        yield client


@pytest.fixture
def client(served, http):
    return make_client(served.url, "co-test-key", http)


def test_chat(fake, client):
    fake.reply("Hello there", usage={"tokens": {"input_tokens": 12.0, "output_tokens": 3.0}})
    response = client.chat(model="command-a-03-2025", messages=[{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": "hi"}])
    assert response.finish_reason == "COMPLETE"
    assert response.message.content[0].text == "Hello there"
    assert response.usage.tokens.input_tokens == 12
    sent = fake.last("/v2/chat")
    assert sent.headers["authorization"] == "Bearer co-test-key"
    assert sent.json["stream"] is False


def test_stream(fake, client):
    fake.reply("Streaming works fine")
    events = list(client.chat_stream(model="command-a-03-2025", messages=[{"role": "user", "content": "go"}]))
    kinds = [e.type for e in events]
    assert kinds[0] == "message-start" and kinds[-1] == "message-end"
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    assert text == "Streaming works fine"
    assert events[-1].delta.finish_reason == "COMPLETE"


def test_tools_round_trip(fake, client):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    fake.reply(tool_calls=[{"id": "get_weather_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}])
    first = client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "weather?"}], tools=tools)
    assert first.finish_reason == "TOOL_CALL"
    call = first.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}'
    second = client.chat(model="command-a-03-2025", tools=tools, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_plan": first.message.tool_plan,
         "tool_calls": [{"id": call.id, "type": "function",
                         "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ])
    assert second.finish_reason == "COMPLETE"


def test_tool_stream(fake, client):
    fake.reply(tool_calls=[{"id": "t1", "name": "lookup", "arguments": '{"q":"a long query"}'}])
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    events = list(client.chat_stream(model="command-a-03-2025", tools=tools,
                                     messages=[{"role": "user", "content": "x"}]))
    starts = [e for e in events if e.type == "tool-call-start"]
    assert starts[0].delta.message.tool_calls.function.name == "lookup"
    args = "".join(e.delta.message.tool_calls.function.arguments for e in events if e.type == "tool-call-delta")
    assert args == '{"q":"a long query"}'


def test_embed(fake, client):
    response = client.embed(model="embed-v4.0", texts=["a", "b"], input_type="search_document",
                            embedding_types=["float"], output_dimension=4)
    assert len(response.embeddings.float_) == 2 and len(response.embeddings.float_[0]) == 4
    assert fake.last("/v2/embed").json["input_type"] == "search_document"


def test_models(fake, client):
    listing = client.models.list(page_size=2)
    assert [m.name for m in listing.models] == ["command-a-03-2025", "command-a-vision-07-2025"]
    assert listing.next_page_token == "2"
    embed_only = client.models.list(endpoint="embed")
    assert [m.name for m in embed_only.models] == ["embed-v4.0"]


def test_errors(fake, client, http):
    bad = make_client(fake.url, "wrong", http)
    with pytest.raises(cohere.errors.UnauthorizedError):
        bad.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "hi"}])
    fake.error(429, {"message": "trial key rate limit"}, {"retry-after": "7"})
    with pytest.raises(cohere.errors.TooManyRequestsError) as info:
        client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "hi"}])
    assert info.value.headers["retry-after"] == "7"
    # the fake rejects what the real API rejects: a tool result that answers no tool call
    with pytest.raises(cohere.errors.BadRequestError):
        client.chat(model="command-a-03-2025", messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}])
