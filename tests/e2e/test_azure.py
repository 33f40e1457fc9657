"""End to end: the real gateway, the official openai SDK as client, the fake Azure OpenAI resource
(classic deployment API with api-version, and the v1 API with an Entra bearer token)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.support import (UPSTREAM_TIMEOUT, admin, client_fixture, gateway_config, gateway_fixture,
                               one_deployment, post)
from tests.fakes.azure import make_app
from tests.fakes.openai_family import Reply
from tests.fakes.server import fresh_fixture, served_fixture
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hello azure"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": CITY}}]


def config(url: str) -> dict:
    provider = {"type": "azure", "api_base": url, "timeout": UPSTREAM_TIMEOUT}
    return gateway_config(
        providers={
            "azure-classic": {**provider, "api_key": "test-key", "api_version": "2024-10-21"},
            "azure-v1": {**provider, "api_version": "v1", "azure_ad_token": "test-ad-token"},
            "azure-env": {**provider, "api_base": url + "/openai"},  # the Entra token from the environment
        },
        models={
            "gpt4o": one_deployment("azure-classic", "gpt-4o-prod"),
            "gpt4o-v1": one_deployment("azure-v1", "gpt-4o-prod"),
            "gpt4o-env": one_deployment("azure-env", "gpt-4o-prod"),
            "embed": one_deployment("azure-classic", "embed-prod"),
            "embed-v1": one_deployment("azure-v1", "embed-prod"),
            "missing": one_deployment("azure-classic", "no-such-deployment"),
        })


upstream = served_fixture(lambda: make_app().state.fake)
gw = gateway_fixture(config, env={"AZURE_OPENAI_AD_TOKEN": "test-ad-token"})
client = client_fixture()
fake = fresh_fixture("upstream", autouse=True)


def test_chat_classic_api(client, fake):
    raw = client.chat.completions.with_raw_response.create(model="gpt4o", messages=USER, temperature=0.1)
    body = json.loads(raw.content)
    validate("CreateChatCompletionResponse", body)  # refusal filled in where Azure leaves it out
    assert body["choices"][0]["message"]["content"] == "Hello from azure! You said: hello azure"
    assert body["model"] == "gpt-4o-2024-08-06" and body["prompt_filter_results"]
    sent = fake.received[-1]
    assert sent.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"} and sent.headers["api-key"] == "test-key"
    assert "authorization" not in sent.headers


def test_stream_with_usage_and_filter_chunks(client):
    chunks = list(client.chat.completions.create(model="gpt4o", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        assert chunk.id and chunk.object == "chat.completion.chunk"
    assert chunks[0].choices and chunks[0].prompt_filter_results  # held back, then attached to the first chunk
    assert all(c.choices[0].delta is not None for c in chunks if c.choices)  # no chunk without a delta
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello from azure! You said: hello azure"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_v1_api_with_entra_token(client, fake):
    completion = client.chat.completions.create(model="gpt4o-v1", messages=USER)
    assert completion.choices[0].message.content.startswith("Hello from azure")
    sent = fake.received[-1]
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
    assert sent.headers["authorization"] == "Bearer test-ad-token" and sent.json["model"] == "gpt-4o-prod"


def test_token_from_environment(client, fake):
    client.chat.completions.create(model="gpt4o-env", messages=USER)
    sent = fake.received[-1]
    assert sent.path == "/openai/deployments/gpt-4o-prod/chat/completions"  # the /openai suffix was accepted
    assert sent.headers["authorization"] == "Bearer test-ad-token"


def test_tool_round_trip_and_streamed_tool_call(client, fake):
    first = client.chat.completions.create(model="gpt4o", messages=USER, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model="gpt4o", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool said: sunny"
    chunks = list(client.chat.completions.create(model="gpt4o", messages=USER, tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id == call.id and json.loads("".join(d.function.arguments for d in deltas)) == {"city": "Paris"}


@pytest.mark.parametrize("model", ["embed", "embed-v1"])
def test_embeddings(client, gw, fake, model):
    packed = client.embeddings.create(model=model, input=["alpha", "beta"])
    assert len(packed.data) == 2 and len(packed.data[1].embedding) == 8
    assert fake.received[-1].json["encoding_format"] == "base64"  # Azure encodes base64 itself
    plain = post(gw, "/v1/embeddings", {"model": model, "input": "alpha", "encoding_format": "float"}).json()
    validate("CreateEmbeddingResponse", plain)


@pytest.mark.parametrize(("provider", "path", "query"), [
    ("azure-classic", "/openai/models", {"api-version": "2024-10-21"}), ("azure-v1", "/openai/v1/models", {})])
def test_models_through_admin(gw, fake, provider, path, query):
    response = admin(gw, "GET", f"/admin/providers/{provider}/models")
    assert response.status_code == 200, response.text
    body = response.json()
    validate("ListModelsResponse", body)
    assert "gpt-4o-2024-08-06" in [m["id"] for m in body["data"]] and body["data"][0]["created"] > 0
    assert (fake.received[-1].path, fake.received[-1].query) == (path, query)


def test_content_filter_error(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt4o", messages=[{"role": "user", "content": "FILTER_ME"}])
    assert info.value.code == "content_filter" and info.value.param == "prompt"
    assert "hate=high" in info.value.message


def test_content_filter_finish_reason(client):
    for stream in (False, True):
        if stream:
            chunks = list(client.chat.completions.create(model="gpt4o", stream=True,
                                                         messages=[{"role": "user", "content": "FILTER_OUTPUT"}]))
            for chunk in chunks:
                validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
            assert chunks[-1].choices[0].finish_reason == "content_filter"
        else:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt4o", messages=[{"role": "user", "content": "FILTER_OUTPUT"}])
            body = json.loads(raw.content)
            validate("CreateChatCompletionResponse", body)
            assert body["choices"][0]["finish_reason"] == "content_filter"


def test_errors(client, fake):
    fake.push(Reply(429, {"error": {"code": "429", "message": "Please retry after 17 seconds."}},
                    {"retry-after": "17"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt4o", messages=USER)
    assert info.value.response.headers["retry-after"] == "17" and info.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="missing", messages=USER)
    assert info.value.code == "model_not_found"


def test_stream_cut_midway(client, fake):
    fake.push(Reply(chunks=[{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}],
                    cut=1, abort=True))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt4o", messages=USER, stream=True))
