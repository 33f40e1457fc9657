"""End to end: the real gateway, the official openai SDK as client, the fake Azure OpenAI resource
(classic deployment API with api-version, and the v1 API with an Entra bearer token)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.azure import make_app
from tests.fakes.openai_family import Reply
from tests.fakes.server import FakeServer
from tests.harness import run_gateway
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hello azure"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": CITY}}]
TIMEOUT = {"connect": 2, "read": 5, "total": 30}


def config(url: str) -> dict:
    def deploy(provider: str, model: str) -> dict:
        return {"retries": 0, "deployments": [{"provider": provider, "model": model}]}

    return {
        "server": {"master_key": MASTER_KEY},
        "circuit_breaker": {"failure_threshold": 1000, "min_requests": 1000},
        "providers": {
            "azure-classic": {"type": "azure", "api_base": url, "api_key": "test-key", "api_version": "2024-10-21",
                              "timeout": TIMEOUT},
            "azure-v1": {"type": "azure", "api_base": url, "api_version": "v1", "azure_ad_token": "test-ad-token",
                         "timeout": TIMEOUT},
            "azure-env": {"type": "azure", "api_base": url + "/openai", "timeout": TIMEOUT},
        },
        "models": {
            "gpt4o": deploy("azure-classic", "gpt-4o-prod"),
            "gpt4o-v1": deploy("azure-v1", "gpt-4o-prod"),
            "gpt4o-env": deploy("azure-env", "gpt-4o-prod"),
            "embed": deploy("azure-classic", "embed-prod"),
            "embed-v1": deploy("azure-v1", "embed-prod"),
            "missing": deploy("azure-classic", "no-such-deployment"),
        },
    }


@pytest.fixture(scope="module")
def upstream():
    app = make_app()
    with FakeServer(app) as server:
        yield app.state.fake, server.url


@pytest.fixture(scope="module")
def gw(upstream):
    with run_gateway(config(upstream[1]), env={"AZURE_OPENAI_AD_TOKEN": "test-ad-token"}) as gateway:
        yield gateway


@pytest.fixture
def fake(upstream):
    upstream[0].replies.clear()
    upstream[0].received.clear()
    return upstream[0]


@pytest.fixture
def client(gw):
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20) as client:
        yield client


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
    plain = httpx.post(gw.url + "/v1/embeddings", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=20,
                       json={"model": model, "input": "alpha", "encoding_format": "float"}).json()
    validate("CreateEmbeddingResponse", plain)


@pytest.mark.parametrize(("provider", "path", "query"), [
    ("azure-classic", "/openai/models", {"api-version": "2024-10-21"}), ("azure-v1", "/openai/v1/models", {})])
def test_models_through_admin(gw, fake, provider, path, query):
    response = httpx.get(f"{gw.url}/admin/providers/{provider}/models",
                         headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=20)
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
