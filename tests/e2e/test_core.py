"""End to end: the real gateway process, the official openai SDK as client, a fake OpenAI upstream."""

from __future__ import annotations

import base64
import json
import signal
import socket
import struct
import threading
import time
import urllib.request

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, openai_config
from tests.e2e.support import client_fixture, gateway_fixture, read_stream, sdk_client
from tests.fakes.openai import UPSTREAM_KEY, FakeOpenAI
from tests.fakes.server import served_fixture
from tests.harness import run_gateway
from tests.schemas import validate

upstream = served_fixture(FakeOpenAI)
gw = gateway_fixture(openai_config)
client = client_fixture()


@pytest.fixture(autouse=True)
def _reset(upstream):
    upstream.script.clear()
    yield
    upstream.script.clear()


def raw(gw, method, path, body=None, headers=None, key=MASTER_KEY):
    headers = dict(headers or {})
    if key is not None:
        headers.setdefault("authorization", f"Bearer {key}")
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        headers.setdefault("content-type", "application/json")
    return httpx.request(method, gw.url + path, content=body, headers=headers, timeout=20)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello world"}]}


# -- chat -------------------------------------------------------------------------------------------

def test_chat_non_streaming_matches_openai(client, upstream):
    completion = client.chat.completions.with_raw_response.create(model="gpt-4o-mini",
                                                                  messages=[{"role": "user", "content": "hi there"}])
    parsed = completion.parse()
    assert parsed.choices[0].message.content == "echo: hi there"
    assert parsed.model == "gpt-4o-mini-2024-07-18-served"  # what the upstream reported
    validate("CreateChatCompletionResponse", json.loads(completion.content))
    headers = completion.headers
    assert headers["x-switchyard-provider"] == "openai-main"
    assert headers["x-switchyard-deployment"] == "openai-mini"
    assert headers["x-switchyard-attempts"] == "1"
    assert headers["x-request-id"]
    sent = upstream.last()
    assert sent.body["model"] == "gpt-4o-mini-2024-07-18"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the provider's key, never the client's


def test_request_id_is_kept(client):
    response = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "my-req-42"})
    assert response.headers["x-request-id"] == "my-req-42"


def test_every_openai_field_is_forwarded_untouched(client, upstream):
    extra = {
        "n": 2, "seed": 7, "logprobs": True, "top_logprobs": 2, "stop": ["END"], "user": "u-1", "max_tokens": 50,
        "max_completion_tokens": 60, "temperature": 0.3, "top_p": 0.9, "presence_penalty": 0.1,
        "frequency_penalty": 0.2, "logit_bias": {"50256": -100}, "metadata": {"a": "b"}, "store": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True}},
        "service_tier": "auto", "reasoning_effort": "low", "parallel_tool_calls": True, "verbosity": "low",
        "prompt_cache_key": "k", "safety_identifier": "s",
    }
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "what is this"},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, **extra)
    body = upstream.last().body
    for key, value in extra.items():
        assert body[key] == value, key
    assert body["messages"] == messages


def test_json_object_response_format(client, upstream):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "json please"}],
                                   response_format={"type": "json_object"})
    assert upstream.last().body["response_format"] == {"type": "json_object"}


def test_streaming_relays_chunks_and_done(gw, client, upstream):
    response, lines = read_stream(gw, {**CHAT, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-switchyard-deployment"] == "openai-mini"
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
        assert "usage" not in chunk  # the client did not ask for usage
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: hello world"
    # the gateway asked the upstream for usage so it can price the request
    assert upstream.last().body["stream_options"] == {"include_usage": True}


def test_streaming_include_usage(client, upstream):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))


def test_tool_calls_non_streaming_and_round_trip(client, upstream):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=tools)
    calls = first.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # parallel calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(calls[0].function.arguments)["city"] == "Paris"
    history = [{"role": "user", "content": "weather?"}, first.choices[0].message.model_dump(exclude_none=True)]
    history += [{"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in calls]
    final = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=tools)
    assert final.choices[0].message.content == "tool said: sunny"
    assert upstream.last().body["messages"][2]["tool_call_id"] == calls[0].id


def test_tool_call_deltas_in_streams(client):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "w"}],
                                            tools=tools, stream=True)
    arguments: dict[int, str] = {}
    names = {}
    finish = None
    for chunk in stream:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
                if delta.function.name:
                    names[delta.index] = delta.function.name
            finish = choice.finish_reason or finish
    assert names == {0: "get_weather", 1: "get_time"}
    assert json.loads(arguments[1]) == {"city": "Paris", "n": 1}
    assert finish == "tool_calls"


# -- embeddings and models ----------------------------------------------------------------------------

def test_embeddings_float_and_base64(client, upstream):
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "bb"], dimensions=4)
    assert len(result.data) == 2 and len(result.data[0].embedding) == 4
    assert upstream.last().body["encoding_format"] == "base64"  # the SDK's default, passed through
    floats = client.embeddings.create(model="text-embedding-3-small", input="abc", encoding_format="float")
    validate("CreateEmbeddingResponse", floats.model_dump())
    assert floats.data[0].embedding[0] == pytest.approx(0.03)


def test_embeddings_base64_raw(gw):
    response = raw(gw, "POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "abc",
                                                   "encoding_format": "base64", "dimensions": 3})
    encoded = response.json()["data"][0]["embedding"]
    assert struct.unpack("<3f", base64.b64decode(encoded))[0] == pytest.approx(0.03)


def test_models_list_and_get(client, gw):
    models = client.models.list()
    validate("ListModelsResponse", models.model_dump())
    assert [m.id for m in models.data] == ["gpt-4o-mini", "text-embedding-3-small", "org/model-with-slash"]
    assert client.models.retrieve("org/model-with-slash").id == "org/model-with-slash"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nope")
    assert err.value.code == "model_not_found"


def test_routes_without_v1_prefix(gw):
    no_prefix = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    assert no_prefix.chat.completions.create(**CHAT).choices[0].message.content == "echo: hello world"
    assert [m.id for m in no_prefix.models.list().data][0] == "gpt-4o-mini"
    assert no_prefix.embeddings.create(model="text-embedding-3-small", input="x").data
    assert no_prefix.models.retrieve("org/model-with-slash").id == "org/model-with-slash"


def test_admin_provider_models(gw):
    response = raw(gw, "GET", "/admin/providers/openai-main/models")
    assert response.status_code == 200
    validate("ListModelsResponse", response.json())
    assert response.json()["data"][0]["id"] == "gpt-4o-mini"
    assert raw(gw, "GET", "/admin/providers/nope/models").status_code == 404


# -- errors: every row of the table ---------------------------------------------------------------------

def assert_envelope(response, status, code, param="__any__"):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    if param != "__any__":
        assert error["param"] == param
    return error


def test_invalid_json_and_content_type(gw):
    assert_envelope(raw(gw, "POST", "/v1/chat/completions", b"{not json", {"content-type": "application/json"}), 400, "invalid_request")
    assert_envelope(raw(gw, "POST", "/v1/chat/completions", b"model=x", {"content-type": "application/x-www-form-urlencoded"}), 400, "invalid_request")
    assert_envelope(raw(gw, "POST", "/v1/chat/completions", {"model": "gpt-4o-mini"}), 400, "invalid_request", "messages")
    assert_envelope(raw(gw, "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [], "stream": "yes"}), 400, "invalid_request")
    assert_envelope(raw(gw, "POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": 5}), 400, "invalid_request", "input")


def test_sdk_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=[], max_tokens=5)
    assert err.value.code == "invalid_request" and err.value.param == "messages"


def test_auth_errors(gw):
    with sdk_client(gw, "wrong-key") as bad, pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(**CHAT)
    assert err.value.code == "invalid_api_key"
    assert "wrong-key" not in err.value.message
    assert_envelope(raw(gw, "POST", "/v1/chat/completions", CHAT, key=None), 401, "invalid_api_key")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "//v1//chat/completions", "/v1/chat/completions/",
                                  "/V1/CHAT/COMPLETIONS", "/v1/./chat/completions", "/v1/models/../chat/completions",
                                  "/chat/completions", "/v1/models", "/models/gpt-4o-mini", "/v1/unknown", "/admin/providers"])
def test_auth_covers_every_spelling_of_a_path(gw, path):
    response = raw(gw, "POST" if "chat" in path else "GET", path, CHAT, key=None, headers={"host": "evil.example"})
    assert response.status_code == 401, (path, response.status_code)


def test_health_is_open(gw):
    assert raw(gw, "GET", "/health/live", key=None).status_code == 200
    ready = raw(gw, "GET", "/health/ready", key=None)
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


def test_unknown_model_route_method_and_size(gw):
    error = assert_envelope(raw(gw, "POST", "/v1/chat/completions", {**CHAT, "model": "gpt-9"}), 404, "model_not_found", "model")
    assert "gpt-9" in error["message"]
    assert_envelope(raw(gw, "GET", "/v1/nothing-here"), 404, "not_found")
    response = raw(gw, "GET", "/v1/chat/completions")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (10 * 1024 * 1024 + 10)}]}
    assert_envelope(raw(gw, "POST", "/v1/chat/completions", big), 413, "request_too_large")


@pytest.mark.parametrize("status,code,expected_status,expected_code,sdk_error", [
    (400, "bad_thing", 400, "bad_thing", openai.BadRequestError),
    (404, None, 404, "model_not_found", openai.NotFoundError),
    (422, None, 422, None, openai.UnprocessableEntityError),
    (500, None, 502, "upstream_error", openai.InternalServerError),
    (503, None, 503, "overloaded", openai.InternalServerError),
    (529, None, 503, "overloaded", openai.InternalServerError),
])
def test_upstream_errors_are_mapped(client, upstream, status, code, expected_status, expected_code, sdk_error):
    upstream.fail(status, f"upstream says no (key sk-secret-{'a' * 20})", code=code)
    with pytest.raises(sdk_error) as err:
        client.chat.completions.create(**CHAT)
    assert err.value.status_code == expected_status
    assert err.value.code == expected_code
    assert "sk-secret" not in err.value.message


def test_upstream_429_keeps_retry_after(client, upstream):
    upstream.fail(429, "slow down", code="rate_limit_exceeded", headers={"retry-after": "7"})
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(**CHAT)
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.code == "rate_limit_exceeded"


def test_context_length_error(client, upstream):
    upstream.fail(400, "This model's maximum context length is 128000 tokens.", code="context_length_exceeded")
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**CHAT)
    assert err.value.code == "context_length_exceeded"


def test_upstream_malformed_body(client, upstream):
    upstream.push(body="not json at all")
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(**CHAT)
    assert err.value.status_code == 502 and err.value.code == "upstream_error"


def test_connect_failure_is_502():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{port.getsockname()[1]}"
    port.close()
    with run_gateway(openai_config(dead)) as gateway, sdk_client(gateway) as client:
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(**CHAT)
        assert err.value.status_code == 502 and err.value.code == "upstream_error"


def test_upstream_stall_past_timeout_is_504(upstream):
    config = openai_config(upstream.url)
    config["providers"]["openai-main"]["timeout"] = {"connect": 1, "read": 0.5, "total": 5}
    with run_gateway(config) as gateway, sdk_client(gateway) as client:
        upstream.push(stall=2)
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(**CHAT)
        assert err.value.status_code == 504 and err.value.code == "timeout"
        assert time.monotonic() - started < 1.8


def test_stream_cut_midway_sends_error_event_without_done(gw, upstream, client):
    upstream.push(cut_after=2)
    _, lines = read_stream(gw, {**CHAT, "messages": [{"role": "user", "content": "one two three four five"}],
                                "stream": True})
    assert "data: [DONE]" not in lines
    last = json.loads(lines[-1][6:])
    assert last["error"]["code"] == "upstream_error"
    upstream.push(cut_after=2)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(**CHAT, stream=True))
    assert client.chat.completions.create(**CHAT).choices  # still healthy


def test_client_disconnect_cancels_upstream(gw, upstream):
    upstream.stream_closed_early.clear()
    before = upstream.closed_early_count
    upstream.push(chunk_delay=0.2, text=" ".join(["w"] * 50))
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {MASTER_KEY}"},
                      json={**CHAT, "stream": True}, timeout=20) as response:
        iterator = response.iter_lines()
        next(iterator)
    deadline = time.monotonic() + 5
    while upstream.closed_early_count == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.closed_early_count > before, "the upstream connection stayed open after the client left"


def test_client_cannot_choose_the_upstream(client, upstream):
    client.chat.completions.create(**CHAT, extra_body={"api_base": "http://169.254.169.254", "base_url": "http://x",
                                                       "api_key": "client-key"},
                                   extra_headers={"x-api-base": "http://evil"})
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert "api_base" not in sent.body and "api_key" not in sent.body
    assert "client-key" not in json.dumps(sent.body) + json.dumps(sent.headers)


# -- metrics -----------------------------------------------------------------------------------------

def test_metrics(gw, client):
    client.chat.completions.create(**CHAT)
    text = raw(gw, "GET", "/metrics", key=None).text
    assert 'switchyard_requests_total{model="gpt-4o-mini",provider="openai-main",status="200"}' in text
    for name in ("switchyard_request_duration_seconds", "switchyard_upstream_duration_seconds",
                 "switchyard_time_to_first_token_seconds", "switchyard_tokens_total", "switchyard_requests_in_flight"):
        assert name in text
    assert 'switchyard_tokens_total{model="gpt-4o-mini",type="prompt"}' in text
    assert MASTER_KEY not in text and UPSTREAM_KEY not in text


def test_metrics_auth(upstream):
    with run_gateway(openai_config(upstream.url, metrics_auth=True)) as gateway:
        assert raw(gateway, "GET", "/metrics", key=None).status_code == 401
        assert raw(gateway, "GET", "/metrics").status_code == 200


def test_logs_are_json_without_secrets(gw, client):
    client.chat.completions.create(**CHAT)
    lines = [json.loads(line) for line in gw.logs().splitlines() if line.startswith("{")]
    assert any(line.get("request_id") for line in lines)
    assert MASTER_KEY not in gw.logs() and UPSTREAM_KEY not in gw.logs()
    assert "hello world" not in gw.logs()  # no bodies


def test_open_gateway_warns_loudly(upstream):
    config = openai_config(upstream.url)
    config["server"]["master_key"] = ""
    with run_gateway(config) as gateway, sdk_client(gateway, "anything") as client:
        assert client.chat.completions.create(**CHAT).choices
        assert "NO MASTER KEY" in gateway.logs()
        # the admin API stays closed without a master key
        assert raw(gateway, "GET", "/admin/providers/openai-main/models", key=None).status_code == 401


def test_sigterm_drains_in_flight_stream(upstream):
    with run_gateway(openai_config(upstream.url)) as gateway:
        upstream.push(chunk_delay=0.1, text=" ".join(["w"] * 15))
        result: dict = {}

        def consume():
            with sdk_client(gateway) as client:
                chunks = list(client.chat.completions.create(**CHAT, stream=True))
            result["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        thread = threading.Thread(target=consume)
        thread.start()
        time.sleep(0.5)
        gateway.signal(signal.SIGTERM)
        thread.join(timeout=15)
        assert result.get("text") == " ".join(["w"] * 15)
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status is SIGTERM's
        assert gateway.process.wait(timeout=10) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in gateway.logs()
        with pytest.raises(OSError):
            urllib.request.urlopen(gateway.url + "/health/live", timeout=1)
