"""The openai SDK's AzureOpenAI client (classic API) and plain OpenAI client (v1 API) against the Azure fake."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.azure import content_filter_error, make_app
from tests.fakes.openai_family import Reply
from tests.fakes.server import fresh_fixture, served_fixture

pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "hi"}]


served = served_fixture(lambda: make_app().state.fake)
fake = fresh_fixture()


@pytest.fixture
def azure(fake):
    return openai.AzureOpenAI(azure_endpoint=fake.url, api_key="test-key", api_version="2024-10-21", max_retries=0,
                              timeout=10)


def test_chat_classic(azure, fake):
    completion = azure.chat.completions.create(model="gpt-4o-prod", messages=USER)
    assert completion.choices[0].message.content == "Hello from azure! You said: hi"
    assert completion.model == "gpt-4o-2024-08-06"
    received = fake.received[-1]
    assert received.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert received.query["api-version"] == "2024-10-21" and received.headers["api-key"] == "test-key"


def test_stream_with_filter_chunks(azure):
    chunks = list(azure.chat.completions.create(model="gpt-4o-prod", messages=USER, stream=True,
                                                stream_options={"include_usage": True}))
    assert chunks[0].choices == [] and chunks[0].prompt_filter_results  # the prompt-filter chunk
    assert any(c.choices and c.choices[0].delta is None for c in chunks)  # the no-delta chunk
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].delta)
    assert text == "Hello from azure! You said: hi"
    assert chunks[-1].usage.total_tokens > 0


def test_tools_embeddings_models(azure):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    first = azure.chat.completions.create(model="gpt-4o-prod", messages=USER, tools=tools)
    assert first.choices[0].message.tool_calls[0].function.name == "get_weather"
    result = azure.embeddings.create(model="embed-prod", input="x")
    assert len(result.data[0].embedding) == 8  # base64 decoded by the SDK
    assert "gpt-4o-2024-08-06" in [m.id for m in azure.models.list()]


def test_v1_api_and_entra_token(fake):
    client = openai.OpenAI(base_url=fake.url + "/openai/v1", api_key="test-ad-token", max_retries=0, timeout=10)
    completion = client.chat.completions.create(model="gpt-4o-prod", messages=USER)
    assert completion.choices[0].message.content.startswith("Hello from azure")
    assert fake.received[-1].headers["authorization"] == "Bearer test-ad-token"
    assert [m.id for m in client.models.list()]


def test_errors(azure, fake):
    with pytest.raises(openai.BadRequestError) as caught:
        azure.chat.completions.create(model="gpt-4o-prod", messages=[{"role": "user", "content": "FILTER_ME"}])
    assert caught.value.code == "content_filter"
    assert caught.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert content_filter_error()["error"]["param"] == "prompt"
    with pytest.raises(openai.NotFoundError):
        azure.chat.completions.create(model="no-such-deployment", messages=USER)
    fake.push(Reply(429, {"error": {"code": "429", "message": "Please retry after 3 seconds."}},
                    {"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError):
        azure.chat.completions.create(model="gpt-4o-prod", messages=USER)
    bad = openai.AzureOpenAI(azure_endpoint=fake.url, api_key="wrong", api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-prod", messages=USER)
    no_version = openai.OpenAI(base_url=fake.url + "/openai/deployments/gpt-4o-prod", api_key="x", max_retries=0,
                               default_headers={"api-key": "test-key"})
    with pytest.raises(openai.NotFoundError):
        no_version.chat.completions.create(model="gpt-4o-prod", messages=USER)
