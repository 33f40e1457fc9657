"""End to end for the OpenAI-compatible dialects (xAI, Together, Hugging Face router and TGI, custom):
the real gateway process, the official openai SDK as client, the OpenAI-family fake in each vendor's
dialect on 127.0.0.1. One parametrised suite, then each vendor's quirks."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import openai
import pytest

from tests.e2e.support import UPSTREAM_TIMEOUT, admin, client_fixture, gateway_config, one_deployment, post
from tests.fakes.openai_family import CUSTOM, HF_ROUTER, TGI, TOGETHER, XAI, Reply, make_app
from tests.fakes.server import serve_fake
from tests.harness import run_gateway
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


@dataclass(frozen=True)
class Vendor:
    name: str  # the fake's dialect name
    provider: str  # the gateway's provider name
    chat_model: str  # the gateway's model names
    embed_model: str | None
    dialect: object


VENDORS = [
    Vendor("xai", "xai-main", "grok", None, XAI),
    Vendor("together", "together-main", "llama", "together-embed", TOGETHER),
    Vendor("huggingface", "hf-router", "qwen", "minilm", HF_ROUTER),
    Vendor("tgi", "hf-tgi", "tgi", None, TGI),
    Vendor("custom", "custom-main", "local", "local-embed", CUSTOM),
]


def config(urls: dict[str, str]) -> dict:
    def provider(kind: str, vendor: str, **options) -> dict:
        return {"type": kind, "api_base": urls[vendor] + "/v1", "api_key": "test-key", "timeout": UPSTREAM_TIMEOUT,
                **options}

    return gateway_config(
        providers={
            "xai-main": provider("xai", "xai"),
            "xai-badkey": provider("xai", "xai", api_key="xai-wrong-key-123456"),
            "together-main": provider("together", "together"),
            "hf-router": provider("huggingface", "huggingface", embeddings_api="pipeline"),
            "hf-tgi": provider("huggingface", "tgi"),
            "custom-main": provider("custom", "custom", auth_header="X-API-Key", auth_scheme="",
                                    rename_params={"max_completion_tokens": "max_tokens"},
                                    drop_params=["stream_options", "user"], headers={"x-team": "search"}),
        },
        models={
            "grok": one_deployment("xai-main", "grok-4"),
            "grok-badkey": one_deployment("xai-badkey", "grok-4"),
            "llama": one_deployment("together-main", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
            "together-embed": one_deployment("together-main", "BAAI/bge-base-en-v1.5"),
            "qwen": one_deployment("hf-router", "Qwen/Qwen3-8B"),
            "minilm": one_deployment("hf-router", "sentence-transformers/all-MiniLM-L6-v2"),
            "tgi": one_deployment("hf-tgi", "tgi"),
            "local": one_deployment("custom-main", "local-model"),
            "local-embed": one_deployment("custom-main", "local-model"),
        })


@pytest.fixture(scope="module")
def fakes():
    """Each vendor's fake (``FakeState``, ``.url`` set), by the vendor's name."""
    with contextlib.ExitStack() as stack:
        yield {v.name: stack.enter_context(serve_fake(make_app(v.dialect).state.fake)) for v in VENDORS}


@pytest.fixture(scope="module")
def gw(fakes):
    with run_gateway(config({name: fake.url for name, fake in fakes.items()})) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _reset(fakes):
    for fake in fakes.values():
        fake.reset()


client = client_fixture()


@pytest.fixture(params=VENDORS, ids=[v.name for v in VENDORS])
def vendor(request, fakes):
    return request.param, fakes[request.param.name]


def test_chat_non_streaming(client, vendor):
    v, upstream = vendor
    raw = client.chat.completions.with_raw_response.create(model=v.chat_model, messages=USER, temperature=0.2)
    body = json.loads(raw.content)
    validate("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == f"Hello from {v.dialect.name}! You said: hello there"
    assert body["choices"][0]["finish_reason"] == "stop"  # eos / eos_token / end_turn mapped
    assert body["usage"]["total_tokens"] > 0
    assert upstream.received[-1].json["temperature"] == 0.2


def test_streaming_with_usage(client, vendor):
    v, _ = vendor
    chunks = list(client.chat.completions.create(model=v.chat_model, messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Hello from {v.dialect.name}! You said: hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_tool_round_trip(client, vendor):
    v, upstream = vendor
    first = client.chat.completions.create(model=v.chat_model, messages=USER, tools=TOOLS)
    validate("CreateChatCompletionResponse", first.model_dump(exclude_unset=True))
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # a string, even where the server sent an object
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model=v.chat_model, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool said: sunny"
    assert upstream.received[-1].json["messages"][2]["tool_call_id"] == call.id


def test_streamed_tool_call(client, vendor):
    v, _ = vendor
    chunks = list(client.chat.completions.create(model=v.chat_model, messages=USER, tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].index == 0 and deltas[0].id and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_embeddings(client, gw, vendor):
    v, upstream = vendor
    if v.name == "xai":  # xAI has no embeddings API: refused before any upstream call
        with pytest.raises(openai.BadRequestError) as info:
            client.embeddings.create(model=v.chat_model, input="x")
        assert info.value.code == "unsupported_endpoint" and not upstream.received
        return
    if v.embed_model is None:  # a TGI server has no /v1/embeddings (that is TEI): its 404 comes back
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model=v.chat_model, input="x")
        return
    packed = client.embeddings.create(model=v.embed_model, input=["alpha", "beta"])  # SDK asks for base64
    assert len(packed.data) == 2 and len(packed.data[0].embedding) == 8
    plain = post(gw, "/v1/embeddings", {"model": v.embed_model, "input": "alpha", "encoding_format": "float"}).json()
    validate("CreateEmbeddingResponse", plain)
    assert plain["data"][0]["embedding"] == pytest.approx(packed.data[0].embedding, abs=1e-6)


def test_models_through_admin(gw, vendor):
    v, upstream = vendor
    response = admin(gw, "GET", f"/admin/providers/{v.provider}/models")
    assert response.status_code == 200, response.text
    body = response.json()
    validate("ListModelsResponse", body)
    assert [m["id"] for m in body["data"]] == list(v.dialect.models)
    assert upstream.received[-1].path == "/v1/models"


def test_rate_limit_keeps_retry_after(client, vendor):
    v, upstream = vendor
    upstream.push(Reply(429, v.dialect.error_body(429, "slow down", "rate_limit"), {"retry-after": "17"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=v.chat_model, messages=USER)
    assert info.value.response.headers["retry-after"] == "17"


def test_stream_cut_midway(client, vendor):
    v, upstream = vendor
    upstream.push(Reply(chunks=[{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                 "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}],
                        cut=1))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=v.chat_model, messages=USER, stream=True))


# -- vendor quirks ----------------------------------------------------------------------------------

def test_xai_bad_key_400_becomes_401(client, fakes):
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="grok-badkey", messages=USER)
    assert info.value.code == "invalid_api_key"
    assert "xai-wrong-key-123456" not in str(info.value.body)


def test_xai_reasoning_content_passes_through(client):
    raw = json.loads(client.chat.completions.with_raw_response.create(model="grok", messages=USER).content)
    assert raw["choices"][0]["message"]["reasoning_content"] == "Let me think."
    chunks = list(client.chat.completions.create(model="grok", messages=USER, stream=True))
    assert any((c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks if c.choices)


def test_tgi_error_shape(client, fakes):
    state = fakes["tgi"]
    state.push(Reply(429, {"error": "Model is overloaded", "error_type": "overloaded"}))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="tgi", messages=USER)
    assert info.value.status_code == 503 and info.value.code == "overloaded"
    state.push(Reply(422, {"error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
                           "error_type": "validation"}))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tgi", messages=USER)


def test_hf_pipeline_embeddings_reach_the_pipeline(client, fakes):
    state = fakes["huggingface"]
    client.embeddings.create(model="minilm", input="alpha")
    sent = state.received[-1]
    assert sent.path == "/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction"
    assert sent.json == {"inputs": "alpha"}


def test_custom_auth_rename_and_drop(client, fakes):
    state = fakes["custom"]
    list(client.chat.completions.create(model="local", messages=USER, stream=True, max_completion_tokens=20,
                                        user="u-1", stream_options={"include_usage": True}))
    sent = state.received[-1]
    assert sent.headers["x-api-key"] == "test-key" and "authorization" not in sent.headers
    assert sent.headers["x-team"] == "search"
    assert sent.json["max_tokens"] == 20
    assert not {"max_completion_tokens", "user", "stream_options"} & set(sent.json)
