"""The official mistralai SDK against the Mistral fake."""

from __future__ import annotations

import pytest
from mistralai.client import Mistral, errors

from tests.fakes.mistral import make_app, mistral_error
from tests.fakes.openai_family import Reply
from tests.fakes.server import fresh_fixture, served_fixture

pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


served = served_fixture(lambda: make_app().state.fake)
fake = fresh_fixture()


@pytest.fixture
def client(fake):
    return Mistral(api_key="test-key", server_url=fake.url)


def test_chat_and_stream(client):
    answer = client.chat.complete(model="mistral-large-latest", messages=USER, random_seed=3, safe_prompt=True)
    assert answer.choices[0].message.content == "Hello from mistral! You said: hi"
    events = list(client.chat.stream(model="mistral-large-latest", messages=USER))
    text = "".join(e.data.choices[0].delta.content or "" for e in events)
    assert text == "Hello from mistral! You said: hi"
    assert events[-1].data.usage.total_tokens > 0  # usage rides on the last chunk


def test_tool_round_trip(client):
    first = client.chat.complete(model="mistral-large-latest", messages=USER, tools=TOOLS, tool_choice="any")
    call = first.choices[0].message.tool_calls[0]
    assert len(call.id) == 9
    messages = [*USER, {"role": "assistant", "content": "", "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": "sunny"}]
    second = client.chat.complete(model="mistral-large-latest", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool said: sunny"


def test_embeddings_and_models(client):
    result = client.embeddings.create(model="mistral-embed", inputs=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert "mistral-large-latest" in [m.id for m in client.models.list().data]


def test_errors(client, fake):
    bad_id = [*USER, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_abc", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "x"}]
    with pytest.raises(errors.SDKError) as caught:
        client.chat.complete(model="mistral-large-latest", messages=bad_id)
    assert caught.value.status_code == 400 and "3280" in caught.value.body
    with pytest.raises(errors.SDKError):
        client.chat.complete(model="mistral-large-latest", messages=[*USER, {"role": "assistant", "content": "x"}])
    fake.push(Reply(429, mistral_error(429, "Requests rate limit exceeded", "rate_limit_error"),
                    {"retry-after": "2"}))
    with pytest.raises(errors.SDKError) as caught:
        client.chat.complete(model="mistral-large-latest", messages=USER)
    assert caught.value.status_code == 429
    with pytest.raises(errors.SDKError) as caught:
        Mistral(api_key="wrong", server_url=fake.url).chat.complete(model="mistral-large-latest", messages=USER)
    assert caught.value.status_code == 401


def test_unknown_field_is_422(fake):
    import httpx

    response = httpx.post(fake.url + "/v1/chat/completions", headers={"authorization": "Bearer test-key"},
                          json={"model": "mistral-large-latest", "messages": USER, "seed": 1})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "seed"]
