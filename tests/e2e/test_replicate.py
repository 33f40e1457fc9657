"""End to end: the real gateway process, the official openai SDK as client, the fake Replicate upstream
(predictions created, polled through follow-ups, streams read from ``urls.stream``)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.support import (UPSTREAM_TIMEOUT, admin, client_fixture, gateway_config, gateway_fixture,
                               one_deployment, post, read_stream)
from tests.fakes.replicate import MODELS, ReplicateFake
from tests.fakes.server import fresh_fixture, served_fixture
from tests.schemas import validate

pytestmark = pytest.mark.timeout(60)

UPSTREAM_KEY = "r8_upstreamkey0001"
LLAMA = "meta/meta-llama-3-8b-instruct"
USER = [{"role": "user", "content": "hello replicate"}]


def config(url: str) -> dict:
    base = {"type": "replicate", "api_base": url, "api_key": UPSTREAM_KEY, "poll_interval": 0.05, "max_wait": 1,
            "timeout": UPSTREAM_TIMEOUT}
    return gateway_config(
        providers={
            "replicate-main": base,
            "replicate-vision": {**base, "input_style": "messages", "image_field": "image_input",
                                 "max_tokens_field": "max_completion_tokens"},
            "replicate-quiet": {**base, "max_tokens_field": "max_new_tokens", "input_defaults": {"top_k": 40}},
            "replicate-badkey": {**base, "api_key": "r8_wrongkey0000"},
        },
        models={
            "llama": one_deployment("replicate-main", LLAMA),
            "llama-pinned": one_deployment("replicate-main", f"{LLAMA}:{MODELS[LLAMA]['version']}"),
            "gpt-vision": one_deployment("replicate-vision", "openai/gpt-4o-mini"),
            "quiet": one_deployment("replicate-quiet", "acme/quiet-llm"),
            "llama-badkey": one_deployment("replicate-badkey", LLAMA),
        })


upstream = served_fixture(lambda: ReplicateFake(valid_keys={UPSTREAM_KEY}))
gw = gateway_fixture(config)
client = client_fixture()
_reset = fresh_fixture("upstream", autouse=True)


def test_chat_non_streaming_with_prefer_wait(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="llama", messages=[{"role": "system", "content": "Be kind."}, *USER],
        max_tokens=20, temperature=0.5, top_p=0.9, stop=["END", "STOP"], seed=3)
    validate("CreateChatCompletionResponse", json.loads(raw.content))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello replicate"
    assert completion.model == LLAMA and completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)  # reported metrics
    sent = upstream.last("/v1/models/")
    assert sent.path == f"/v1/models/{LLAMA}/predictions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}" and sent.headers["prefer"] == "wait=60"
    assert sent.json == {"input": {"prompt": "hello replicate", "system_prompt": "Be kind.", "max_tokens": 20,
                                   "temperature": 0.5, "top_p": 0.9, "seed": 3, "stop_sequences": "END,STOP"}}
    assert len(upstream.received) == 1  # finished within Prefer: wait, no polling


def test_polling_until_done(client, upstream):
    upstream.reply("slow answer", polls=3)
    completion = client.chat.completions.create(model="llama", messages=USER)
    assert completion.choices[0].message.content == "slow answer"
    polls = [r for r in upstream.received if r.method == "GET"]
    assert len(polls) == 4 and all(r.path.startswith("/v1/predictions/") for r in polls)
    assert all(r.headers["authorization"] == f"Bearer {UPSTREAM_KEY}" for r in polls)


def test_polling_gives_up_after_max_wait(client, upstream):
    upstream.reply("never", polls=1000)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="llama", messages=USER)
    assert info.value.status_code == 504 and info.value.code == "timeout"


def test_pinned_version(client, upstream):
    client.chat.completions.create(model="llama-pinned", messages=USER)
    sent = upstream.last("/v1/predictions")
    assert sent.path == "/v1/predictions" and sent.json["version"] == MODELS[LLAMA]["version"]


def test_estimated_usage_is_marked(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="quiet", max_tokens=9, messages=[*USER, {"role": "assistant", "content": "hi"},
                                               {"role": "user", "content": "more"}])
    body = json.loads(raw.content)
    validate("CreateChatCompletionResponse", body)
    assert body["usage"]["estimated"] is True and body["usage"]["prompt_tokens"] > 0
    sent = upstream.last("/v1/models/").json["input"]
    assert sent == {"top_k": 40, "max_new_tokens": 9,
                    "prompt": "User: hello replicate\n\nAssistant: hi\n\nUser: more\n\nAssistant:"}


def test_streaming_with_usage(client, upstream):
    upstream.reply("streamed line one\nline two")
    chunks = list(client.chat.completions.create(model="llama", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed line one\nline two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_extra["estimated"] is True
    create, stream = upstream.received
    assert create.json["stream"] is True and "prefer" not in create.headers
    assert stream.path.startswith("/v1/stream/") and stream.headers["accept"] == "text/event-stream"
    assert stream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_image_input(client, upstream):
    completion = client.chat.completions.create(model="gpt-vision", max_tokens=50, messages=[
        {"role": "system", "content": "Look closely."},
        {"role": "user", "content": [{"type": "text", "text": "what is this"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert completion.choices[0].message.content == "Echo: what is this [1 image(s)]"
    assert upstream.last("/v1/models/").json["input"] == {
        "messages": [{"role": "user", "content": "what is this"}], "system_prompt": "Look closely.",
        "image_input": ["https://example.com/cat.png"], "max_completion_tokens": 50}


def test_images_without_mapping_are_rejected(client, upstream):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert info.value.code == "unsupported_parameter" and not upstream.received


def test_tools_are_unsupported(client, upstream):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="llama", messages=USER, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    assert info.value.code == "unsupported_parameter" and info.value.param == "tools"
    assert not upstream.received


def test_no_embeddings(gw):
    response = post(gw, "/v1/embeddings", {"model": "llama", "input": "x"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_models_through_admin(gw):
    response = admin(gw, "GET", "/admin/providers/replicate-main/models")
    assert response.status_code == 200
    body = response.json()
    validate("ListModelsResponse", body)
    assert {m["id"] for m in body["data"]} == set(MODELS) and body["data"][0]["owned_by"] == "meta"


def test_failed_prediction(client, upstream):
    upstream.reply(status="failed", error="CUDA error: out of memory")
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="llama", messages=USER)
    assert info.value.status_code == 502 and "out of memory" in info.value.message


def test_invalid_upstream_key(client):
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="llama-badkey", messages=USER)
    assert info.value.code == "invalid_api_key" and "r8_wrongkey0000" not in str(info.value.body)


def test_rate_limit_keeps_retry_after(client, upstream):
    upstream.error(429, "Request was throttled. Expected available in 11 seconds.", {"retry-after": "11"})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="llama", messages=USER)
    assert info.value.response.headers["retry-after"] == "11"


@pytest.mark.parametrize(("status", "error", "gateway_status", "code"), [
    (402, openai.RateLimitError, 429, "insufficient_quota"),
    (422, openai.BadRequestError, 400, None),
    (500, openai.InternalServerError, 502, "upstream_error"),
    (503, openai.InternalServerError, 503, "overloaded"),
])
def test_error_classes(client, upstream, status, error, gateway_status, code):
    upstream.error(status, f"scripted {status}")
    with pytest.raises(error) as info:
        client.chat.completions.create(model="llama", messages=USER)
    assert info.value.status_code == gateway_status and info.value.code == code


def test_error_event_in_stream(client, upstream):
    upstream.reply("some words first", stream_error="model crashed mid-way")
    with pytest.raises(openai.APIError, match="model crashed"):
        list(client.chat.completions.create(model="llama", messages=USER, stream=True))


@pytest.mark.parametrize("abort", [False, True])
def test_stream_cut_midway(gw, client, upstream, abort):
    upstream.reply("one two three four five six", cut_after=3, abort=abort)
    _, lines = read_stream(gw, {"model": "llama", "messages": USER, "stream": True})
    assert "data: [DONE]" not in lines
    assert any('"one"' in line for line in lines[:-1])  # the text before the cut was relayed
    assert json.loads(lines[-1][6:])["error"]["type"] == "server_error"
    upstream.reply("again and again", cut_after=1, abort=abort)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="llama", messages=USER, stream=True))
    assert client.chat.completions.create(model="llama", messages=USER).choices  # still healthy
