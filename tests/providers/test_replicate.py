"""Replicate translation: input mapping, follow-ups (polling and the stream URL), predictions -> chat
completions, usage estimates, errors and the stream translator.

Whole recorded cases live in tests/golden/replicate/*.json; these tests pin the rules one at a time.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import (
    ContextLengthExceeded,
    InvalidApiKey,
    InvalidRequest,
    ModelNotFound,
    UnsupportedParameter,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from providers.base import Call, ProviderConfig, UpstreamResponse
from providers.registry import Registry
from providers.replicate import ReplicateProvider

pytestmark = pytest.mark.timeout(30)

MODEL = "meta/meta-llama-3-8b-instruct"
USER = [{"role": "user", "content": "hi there"}]


def provider(**options) -> ReplicateProvider:
    values = {name: spec.default for name, spec in ReplicateProvider.options.items()}
    values.update(options)
    return ReplicateProvider(ProviderConfig(name="rep", type="replicate", api_base="https://api.replicate.com/",
                                            api_key="r8_secretkey12345", options=values))


def call(body=None, model=MODEL, **kw) -> Call:
    return Call(body={"model": "alias", "messages": USER, **(body or {})}, model=model, request_id="req-1",
                created=1, **kw)


def prediction(status="succeeded", **fields) -> UpstreamResponse:
    body = {"id": "p1", "model": MODEL, "status": status, "output": ["a", "b"], "error": None,
            "metrics": {"input_token_count": 4, "output_token_count": 2},
            "urls": {"get": "https://api.replicate.com/v1/predictions/p1",
                     "stream": "https://stream.replicate.com/v1/files/p1"}, **fields}
    return UpstreamResponse(201, {}, orjson.dumps(body))


def sent_input(body=None, **options) -> dict:
    return orjson.loads(provider(**options).build_chat(call(body)).body)["input"]


def test_registry_path():
    assert Registry().get("replicate") is ReplicateProvider


def test_bad_input_style_is_a_config_error():
    from gateway.config import parse_config
    from gateway.config_reader import ConfigError
    with pytest.raises(ConfigError) as err:
        parse_config({"providers": {"r": {"type": "replicate", "input_style": "chatml"}}, "models": {}}, env={})
    assert err.value.errors == ["providers.r.input_style: must be one of prompt, messages, got 'chatml'"]


# -- requests -------------------------------------------------------------------------------------


def test_model_endpoint_headers_and_prefer_wait():
    request = provider().build_chat(call())
    assert request.method == "POST" and request.stream is False
    assert request.url == f"https://api.replicate.com/v1/models/{MODEL}/predictions"
    assert request.headers["authorization"] == "Bearer r8_secretkey12345"
    assert request.headers["prefer"] == "wait=60"
    assert orjson.loads(request.body) == {"input": {"prompt": "hi there"}}


def test_version_endpoint():
    request = provider(prefer_wait=10).build_chat(call(model=f"{MODEL}:abcdef0123456789"))
    assert request.url == "https://api.replicate.com/v1/predictions"
    assert orjson.loads(request.body)["version"] == "abcdef0123456789"
    assert request.headers["prefer"] == "wait=10"


def test_stream_create_has_stream_flag_and_no_wait():
    request = provider().build_chat(call({"stream": True}, stream=True))
    assert orjson.loads(request.body)["stream"] is True
    assert "prefer" not in request.headers and request.stream is False  # the stream is the follow-up


@pytest.mark.parametrize("model", ["llama", "a/b/c", "a/b:not-hex!", ""])
def test_bad_model_names(model):
    with pytest.raises(InvalidRequest):
        provider().build_chat(call(model=model))


@pytest.mark.parametrize(("field", "value", "native", "expected"), [
    ("max_tokens", 5, "max_tokens", 5),
    ("max_completion_tokens", 6, "max_tokens", 6),
    ("temperature", 0.1, "temperature", 0.1),
    ("top_p", 0.5, "top_p", 0.5),
    ("seed", 9, "seed", 9),
    ("stop", ["a", "b"], "stop_sequences", "a,b"),
    ("stop", "z", "stop_sequences", "z"),
    ("presence_penalty", 0.3, "presence_penalty", 0.3),
])
def test_field_mapping(field, value, native, expected):
    assert sent_input({field: value})[native] == expected


def test_max_tokens_field_option_and_input_defaults():
    got = sent_input({"max_tokens": 7}, max_tokens_field="max_new_tokens", input_defaults={"top_k": 3, "prompt": "x"})
    assert got == {"top_k": 3, "prompt": "hi there", "max_new_tokens": 7}


def test_system_prompt_and_transcript():
    got = sent_input({"messages": [{"role": "system", "content": "S"}, *USER,
                                   {"role": "assistant", "content": "A"}, {"role": "user", "content": "B"}]})
    assert got == {"prompt": "User: hi there\n\nAssistant: A\n\nUser: B\n\nAssistant:", "system_prompt": "S"}


def test_messages_style():
    got = sent_input({"messages": [*USER, {"role": "assistant", "content": "A"}]}, input_style="messages")
    assert got == {"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "A"}]}


def test_images():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "t"},
                                                      {"type": "image_url", "image_url": "https://x/1.png"}]}]}
    assert sent_input(body, image_field="image_input")["image_input"] == ["https://x/1.png"]
    assert sent_input(body, image_field="image", image_list=False)["image"] == "https://x/1.png"
    with pytest.raises(UnsupportedParameter):
        sent_input(body)
    two = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u1"}},
                                                     {"type": "image_url", "image_url": {"url": "u2"}}]}]}
    with pytest.raises(UnsupportedParameter):
        sent_input(two, image_field="image", image_list=False)


@pytest.mark.parametrize(("field", "value"), [
    ("tools", [{"type": "function", "function": {"name": "f"}}]), ("tool_choice", "required"),
    ("response_format", {"type": "json_object"}), ("n", 3), ("logprobs", True), ("user", "u"),
])
def test_unsupported_fields(field, value):
    with pytest.raises(UnsupportedParameter) as info:
        sent_input({field: value})
    assert info.value.param == field and "replicate" in info.value.message
    dropping = ReplicateProvider(ProviderConfig(name="rep", type="replicate", api_base="http://x", api_key="k",
                                                drop_unsupported_params=True))
    assert orjson.loads(dropping.build_chat(call({field: value})).body) == {"input": {"prompt": "hi there"}}


# -- follow-ups -----------------------------------------------------------------------------------


def test_finished_prediction_needs_no_follow_up():
    assert provider().follow_up(call(), prediction("succeeded")) is None
    assert provider().follow_up(call(), prediction("failed")) is None
    assert provider().follow_up(call(), UpstreamResponse(429, {}, b"{}")) is None


def test_running_prediction_is_polled_with_delay_until_max_wait():
    p = provider(poll_interval=0.5, max_wait=1.0)
    c = call()
    first = p.follow_up(c, prediction("starting"))
    assert first.method == "GET" and first.url == "https://api.replicate.com/v1/predictions/p1"
    assert first.delay == 0.5 and first.stream is False and first.body is None
    assert first.headers["authorization"] == "Bearer r8_secretkey12345"
    assert p.follow_up(c, prediction("processing")) is not None
    assert p.follow_up(c, prediction("processing")) is None  # max_wait spent: parse_chat reports a timeout
    with pytest.raises(UpstreamTimeout):
        p.parse_chat(c, prediction("processing"))


def test_stream_follow_up_opens_the_stream_url():
    c = call({"stream": True}, stream=True)
    request = provider().follow_up(c, prediction("starting", output=None))
    assert request.method == "GET" and request.stream is True
    assert request.url == "https://stream.replicate.com/v1/files/p1"
    assert request.headers["accept"] == "text/event-stream" and request.headers["cache-control"] == "no-store"
    assert provider().follow_up(c, prediction("starting")) is None  # only once per call


def test_stream_follow_up_errors():
    with pytest.raises(UpstreamError, match="boom"):
        provider().follow_up(call(stream=True), prediction("failed", error="boom"))
    with pytest.raises(UnsupportedParameter):
        provider().follow_up(call(stream=True), prediction("starting", urls={"get": "https://x/p"}))
    with pytest.raises(UnsupportedParameter):  # only http(s) URLs are followed
        provider().follow_up(call(stream=True), prediction("starting", urls={"stream": "file:///etc/passwd"}))


# -- responses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("output", "text"), [(["a", None, "b"], "ab"), ("whole", "whole"), (None, ""),
                                              ({"k": 1}, '{"k":1}')])
def test_output_shapes(output, text):
    out = provider().parse_chat(call(), prediction(output=output))
    assert orjson.loads(out.body)["choices"][0]["message"]["content"] == text


def test_completion_shape_and_reported_usage():
    out = provider().parse_chat(call(), prediction())
    body = orjson.loads(out.body)
    assert body["id"] == "chatcmpl-req1" and body["object"] == "chat.completion" and body["model"] == MODEL
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == 6 and "estimated" not in body["usage"]
    assert out.usage.estimated is False


def test_missing_counts_are_estimated_and_marked():
    out = provider().parse_chat(call({"messages": [{"role": "user", "content": "x" * 40}]}),
                                prediction(output=["y" * 10], metrics={"output_token_count": 5}))
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.estimated) == (10, 5, True)
    assert orjson.loads(out.body)["usage"]["estimated"] is True


@pytest.mark.parametrize(("status", "error", "cls"), [
    ("failed", "oops", UpstreamError), ("failed", "exceeds maximum context length", ContextLengthExceeded),
    ("canceled", None, UpstreamError), ("starting", None, UpstreamTimeout)])
def test_unsuccessful_predictions(status, error, cls):
    with pytest.raises(cls):
        provider().parse_chat(call(), prediction(status, error=error))


def test_list_models():
    p = provider()
    assert p.build_list_models().url == "https://api.replicate.com/v1/models"
    data = {"next": None, "results": [{"owner": "meta", "name": "llama", "description": "d",
                                       "latest_version": {"id": "v1", "created_at": "2024-01-01T00:00:00Z"}},
                                      {"owner": "broken"}]}
    models = p.parse_list_models(UpstreamResponse(200, {}, orjson.dumps(data)))
    assert models == [{"id": "meta/llama", "object": "model", "created": 1704067200, "owned_by": "meta",
                       "description": "d", "latest_version": "v1"}]


def test_no_embeddings():
    with pytest.raises(UnsupportedParameter):
        provider().build_embeddings(Call(body={"input": "x"}, model=MODEL, endpoint="embeddings"))


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "cls", "message"), [
    (401, {"title": "Unauthenticated", "detail": "bad token", "status": 401}, InvalidApiKey, "bad token"),
    (402, {"detail": "no credit"}, UpstreamRateLimited, "no credit"),
    (404, {"detail": "not found"}, ModelNotFound, "not found"),
    (422, {"detail": [{"loc": ["input"], "msg": "prompt is required"}]}, UpstreamClientError, "prompt is required"),
    (422, {"title": "Input validation failed"}, UpstreamClientError, "Input validation failed"),
    (500, {"detail": "boom"}, UpstreamError, "boom"),
])
def test_error_mapping(status, body, cls, message):
    error = provider().map_error(UpstreamResponse(status, {}, orjson.dumps(body)))
    assert type(error) is cls and error.message == message
    if status == 422:
        assert error.status == 400
    if status == 402:
        assert error.code == "insufficient_quota"


def test_429_retry_after_and_scrubbed_key():
    error = provider().map_error(UpstreamResponse(429, {"retry-after": "4"},
                                                  orjson.dumps({"detail": "slow down r8_secretkey12345"})))
    assert isinstance(error, UpstreamRateLimited) and error.retry_after == 4.0
    assert "r8_secretkey12345" not in error.message


# -- streams --------------------------------------------------------------------------------------


def events(*items: tuple[str, str]) -> bytes:
    return b"".join(f"event: {e}\nid: 1:{i}\n" .encode()
                    + b"".join(f"data: {line}\n".encode() for line in d.split("\n")) + b"\n"
                    for i, (e, d) in enumerate(items))


def run(translator, raw: bytes) -> list[dict]:
    return [orjson.loads(f[6:]) for f in translator.feed(raw) + translator.finish()]


def test_stream_text_usage_estimated_and_logs_ignored():
    c = call({"stream": True, "messages": [{"role": "user", "content": "12345678"}]}, stream=True, include_usage=True)
    translator = provider().stream_translator(c)
    chunks = run(translator, events(("output", "Hi"), ("logs", "loading"), ("output", " there\nyou"),
                                    ("something-new", "x"), ("done", "{}")))
    assert [ch["choices"][0]["delta"] for ch in chunks[:3]] == [{"role": "assistant", "content": ""},
                                                                 {"content": "Hi"}, {"content": " there\nyou"}]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["estimated"] is True
    assert chunks[4]["usage"]["prompt_tokens"] == 2 and chunks[4]["usage"]["completion_tokens"] == 3
    assert translator.usage.estimated is True


def test_stream_without_include_usage_has_no_usage_chunk():
    chunks = run(provider().stream_translator(call(stream=True)), events(("output", "a"), ("done", "")))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[-1]


@pytest.mark.parametrize(("raw", "cls", "match"), [
    (events(("output", "a"), ("error", '{"detail":"bad input"}')), UpstreamError, "bad input"),
    (events(("output", "a"), ("done", '{"reason":"error","error":"died"}')), UpstreamError, "died"),
    (events(("done", '{"reason":"canceled"}')), UpstreamError, "canceled"),
    (events(("error", "plain text failure")), UpstreamError, "plain text failure"),
    (events(("output", "a")), UpstreamError, "done event"),
])
def test_stream_errors(raw, cls, match):
    with pytest.raises(cls, match=match):
        run(provider().stream_translator(call(stream=True)), raw)


def test_the_key_only_follows_urls_on_replicate_hosts():
    """A prediction's urls.get / urls.stream may not send the vendor key to a foreign host."""
    from providers.base import Call, UpstreamResponse
    import orjson

    p = provider()
    def prediction(get, stream):
        return UpstreamResponse(201, {}, orjson.dumps({"id": "p1", "status": "starting",
                                                        "urls": {"get": get, "stream": stream}}))
    call = Call(body={"model": "m", "messages": []}, model="meta/llama", request_id="r")
    followed = p.follow_up(call, prediction("https://api.replicate.com/v1/predictions/p1", None))
    assert followed is not None and followed.url.startswith("https://api.replicate.com/")
    stream_call = Call(body={"model": "m", "messages": []}, model="meta/llama", request_id="r", stream=True)
    followed = p.follow_up(stream_call, prediction(None, "https://stream.replicate.com/v1/files/abc"))
    assert followed is not None and followed.stream
    assert p.follow_up(call, prediction("https://evil.example/steal", None)) is None
    with pytest.raises(Exception):
        p.follow_up(Call(body={}, model="meta/llama", request_id="r", stream=True),
                    prediction(None, "https://evil.example/steal"))
    trusting = provider(trusted_hosts=["files.example"])
    assert trusting.follow_up(call, prediction("https://files.example/p1", None)) is not None
