"""The openai SDK against the Perplexity fake: ``responses`` for the Agent API (Perplexity documents the
openai SDK as a client of it; the perplexityai SDK is not installed here) and ``chat.completions`` for
Sonar."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.fakes.openai_family import Reply
from tests.fakes.perplexity import make_app, pplx_error
from tests.fakes.server import fresh_fixture, served_fixture

pytestmark = pytest.mark.timeout(30)

FUNCTION = {"type": "function", "name": "get_weather", "description": "weather", "parameters": {"type": "object"}}


served = served_fixture(lambda: make_app().state.fake)
fake = fresh_fixture()


@pytest.fixture
def agent(fake):
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="test-key", max_retries=0, timeout=10)


def test_agent_response_with_search(agent, fake):
    response = agent.responses.create(model="perplexity/sonar", input="paris?", tools=[{"type": "web_search"}])
    assert response.output_text == "Hello from perplexity agent! You said: paris?"
    assert response.output[0].type == "search_results"
    assert response.usage.input_tokens > 0
    assert fake.received[-1].path == "/v1/responses"


def test_agent_stream(agent):
    events = list(agent.responses.create(model="openai/gpt-5.1", input="hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
        "Hello from perplexity agent! You said: hello"


def test_agent_function_call_round_trip(agent):
    first = agent.responses.create(model="openai/gpt-5.1", input="weather?", tools=[FUNCTION])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    second = agent.responses.create(model="openai/gpt-5.1", tools=[FUNCTION], input=[
        {"type": "message", "role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text == "The tool said: sunny"


def test_agent_failures_come_with_http_200(agent):
    failed = agent.responses.create(model="openai/gpt-5.1", input="FAIL_ME")
    assert failed.status == "failed" and failed.error.message
    incomplete = agent.responses.create(model="openai/gpt-5.1", input="TRUNCATE_ME")
    assert incomplete.status == "incomplete" and incomplete.incomplete_details.reason == "max_output_tokens"


def test_agent_is_strict(agent, fake):
    with pytest.raises(openai.BadRequestError) as caught:
        agent.responses.create(model="openai/gpt-5.1", input="x", extra_body={"seed": 1})
    assert 'unknown field "seed"' in caught.value.message
    with pytest.raises(openai.BadRequestError):
        agent.responses.create(model="perplexity/sonar-pro", input="x")
    fake.push(Reply(429, pplx_error(429, "slow down", "request_rate_limit_exceeded"), {"retry-after": "4"}))
    with pytest.raises(openai.RateLimitError):
        agent.responses.create(model="openai/gpt-5.1", input="x")
    assert httpx.get(fake.url + "/v1/models").json()["data"][0]["id"] == "perplexity/sonar"


def test_sonar_chat_and_stream(fake):
    client = openai.OpenAI(base_url=fake.url, api_key="test-key", max_retries=0, timeout=10)
    completion = client.chat.completions.create(model="sonar", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Hello from perplexity! You said: hi"
    assert completion.citations and completion.search_results  # extra fields kept by the SDK
    chunks = list(client.chat.completions.create(model="sonar", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"  # the stream ends without [DONE]
    assert chunks[-1].usage.total_tokens > 0 and chunks[0].citations
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="sonar", messages=[{"role": "user", "content": "a"},
                                                                {"role": "user", "content": "b"}])
