"""The official openai SDK (and huggingface_hub for the router) against the OpenAI-family fake, one
dialect at a time: if the SDK cannot parse what the fake sends, the fake is wrong."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.fakes.openai_family import CUSTOM, HF_ROUTER, TGI, TOGETHER, XAI, Reply, make_app
from tests.fakes.server import FakeServer

pytestmark = pytest.mark.timeout(30)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
DIALECTS = [XAI, TOGETHER, HF_ROUTER, TGI, CUSTOM]


@pytest.fixture(scope="module", params=DIALECTS, ids=[d.name for d in DIALECTS])
def fake(request):
    app = make_app(request.param)
    with FakeServer(app) as server:
        yield request.param, app.state.fake, server.url


def client_for(dialect, url, key="test-key"):
    if dialect.auth_header != "authorization":
        return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=10,
                             default_headers={dialect.auth_header: key})
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)


def test_chat(fake):
    dialect, state, url = fake
    completion = client_for(dialect, url).chat.completions.create(
        model=dialect.models[0], messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == f"Hello from {dialect.name}! You said: hi"
    assert completion.choices[0].finish_reason == dialect.finish_stop
    assert state.received[-1].json["model"] == dialect.models[0]


def test_stream(fake):
    dialect, state, url = fake
    stream = client_for(dialect, url).chat.completions.create(
        model=dialect.models[0], messages=[{"role": "user", "content": "hello there friend"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Hello from {dialect.name}! You said: hello there friend"
    assert chunks[-1].choices[0].finish_reason == dialect.finish_stop or chunks[-1].usage is not None


def test_tool_round_trip(fake):
    dialect, _, url = fake
    client = client_for(dialect, url)
    messages = [{"role": "user", "content": "weather?"}]
    first = client.chat.completions.create(model=dialect.models[0], messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = call.function.arguments if isinstance(call.function.arguments, str) else json.dumps(
        call.function.arguments)  # the custom dialect sends an object, as some servers do
    messages += [{"role": "assistant", "content": None, "tool_calls": [
                     {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model=dialect.models[0], messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool said: sunny"


def test_tool_message_without_call_is_refused(fake):
    dialect, _, url = fake
    with pytest.raises(openai.BadRequestError):
        client_for(dialect, url).chat.completions.create(
            model=dialect.models[0], messages=[{"role": "tool", "tool_call_id": "x", "content": "?"}])


def test_embeddings_and_models(fake):
    dialect, _, url = fake
    client = client_for(dialect, url)
    if dialect.embeddings:
        result = client.embeddings.create(model=dialect.models[-1], input=["a", "b"], encoding_format="float")
        assert len(result.data) == 2 and len(result.data[1].embedding) == 8
    headers = {dialect.auth_header: f"{dialect.auth_scheme} test-key".strip()}
    listed = httpx.get(url + "/v1/models", headers=headers).json()
    if dialect.models_bare_array:
        assert [m["id"] for m in listed] == list(dialect.models)
    else:
        assert [m.id for m in client.models.list()] == list(dialect.models)


def test_bad_key_and_scripted_rate_limit(fake):
    dialect, state, url = fake
    error = openai.BadRequestError if dialect.bad_key_status == 400 else openai.AuthenticationError
    with pytest.raises(error):
        client_for(dialect, url, key="wrong").chat.completions.create(
            model=dialect.models[0], messages=[{"role": "user", "content": "hi"}])
    state.push(Reply(429, dialect.error_body(429, "slow down"), {"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client_for(dialect, url).chat.completions.create(model=dialect.models[0],
                                                         messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.headers["retry-after"] == "7"


def test_hf_pipeline_with_huggingface_hub():
    from huggingface_hub import InferenceClient

    app = make_app(HF_ROUTER)
    with FakeServer(app) as server:
        raw = httpx.post(server.url + "/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/"
                         "feature-extraction", json={"inputs": ["a", "b"]},
                         headers={"authorization": "Bearer test-key"}).json()
        assert len(raw) == 2 and len(raw[0]) == 8
        client = InferenceClient(base_url=server.url + "/v1", api_key="test-key")
        answer = client.chat_completion(messages=[{"role": "user", "content": "hi"}], model="Qwen/Qwen3-8B")
        assert answer.choices[0].message.content == "Hello from huggingface! You said: hi"
