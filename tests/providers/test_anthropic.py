"""Anthropic translation: request mapping, responses, finish reasons, usage, errors, streams, models.

Whole recorded cases live in tests/golden/anthropic/*.json; these tests pin the rules one at a time.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.config import ConfigError, parse_config
from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidApiKey,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RequestTooLarge,
    UnsupportedParameter,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from gateway.sse import encode_event
from providers.anthropic import AnthropicProvider
from providers.base import Call, ProviderConfig, UpstreamResponse
from providers.registry import Registry
from tests.fakes.anthropic import FakeState, Reply, _message, stream_events, text, thinking, tool_use
from tests.schemas import validate

pytestmark = pytest.mark.timeout(30)

KEY = "sk-ant-api03-secretsecretsecret"
USER = [{"role": "user", "content": "hi"}]


def provider(api_base="https://api.anthropic.com", drop=False, headers=None, **options) -> AnthropicProvider:
    values = {name: spec.default for name, spec in AnthropicProvider.options.items()}
    values.update(options)
    return AnthropicProvider(ProviderConfig(name="claude", type="anthropic", api_base=api_base, api_key=KEY,
                                            headers=headers or {}, drop_unsupported_params=drop, options=values))


def call(body, **kw) -> Call:
    body = {"model": "alias", "messages": USER, **body}
    return Call(body=body, model="claude-sonnet-4-6", request_id="req-1", created=1, **kw)


def sent(body, p=None, **kw) -> dict:
    return orjson.loads((p or provider()).build_chat(call(body, **kw)).body)


def reply(body, status=200, headers=None) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamResponse(status=status, headers=headers or {}, body=raw)


def test_registry_path_and_capabilities():
    assert Registry().get("anthropic") is AnthropicProvider
    assert AnthropicProvider.capabilities.embeddings is False


# -- requests: URL, headers, options --------------------------------------------------------------


def test_url_and_headers():
    request = provider().build_chat(call({}))
    assert (request.method, request.url, request.stream) == ("POST", "https://api.anthropic.com/v1/messages", False)
    assert request.headers == {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": KEY}


def test_header_options_and_openai_style_base():
    p = provider(api_base="http://proxy.test/v1/", anthropic_version="2024-01-01",
                 anthropic_beta=["a-2025", "b-2026"], headers={"x-extra": "1"})
    request = p.build_chat(call({}))
    assert request.url == "http://proxy.test/v1/messages"
    assert request.headers["anthropic-version"] == "2024-01-01"
    assert request.headers["anthropic-beta"] == "a-2025,b-2026"
    assert request.headers["x-extra"] == "1"
    assert "authorization" not in request.headers
    assert provider(anthropic_beta="one").build_chat(call({})).headers["anthropic-beta"] == "one"


def test_config_loader_validates_options():
    raw = {"providers": {"c": {"type": "anthropic", "api_key": "k", "default_max_tokens": 8000,
                               "anthropic_beta": ["x"], "allow_temperature_with_top_p": True}}}
    config = parse_config(raw)
    assert config.providers["c"].api_base == "https://api.anthropic.com"
    assert config.providers["c"].options["default_max_tokens"] == 8000
    assert config.providers["c"].options["anthropic_version"] == "2023-06-01"
    with pytest.raises(ConfigError):
        parse_config({"providers": {"c": {"type": "anthropic", "default_max_tokens": "lots"}}})
    with pytest.raises(ConfigError):
        parse_config({"providers": {"c": {"type": "anthropic", "no_such_option": 1}}})


def test_stream_flag():
    request = provider().build_chat(call({"stream": True, "stream_options": {"include_usage": True}}, stream=True))
    assert request.stream is True
    body = orjson.loads(request.body)
    assert body["stream"] is True and "stream_options" not in body


# -- requests: messages ---------------------------------------------------------------------------


def test_system_and_developer_are_hoisted_in_order():
    body = sent({"messages": [{"role": "system", "content": "A"}, {"role": "user", "content": "hi"},
                              {"role": "developer", "content": [{"type": "text", "text": "B"}]},
                              {"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}]})
    assert body["system"] == [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]
    assert body["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                                {"role": "user", "content": "again"}]
    assert sent({"messages": [{"role": "system", "content": "only"}, *USER]})["system"] == "only"
    assert "system" not in sent({})


def test_consecutive_roles_are_merged_and_empty_turns_dropped():
    body = sent({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": "b"}]},
                              {"role": "assistant", "content": ""}, {"role": "user", "content": "c"}]})
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"},
                                                             {"type": "text", "text": "c"}]}]


def test_cache_control_on_parts_is_kept():
    part = {"type": "text", "text": "long doc", "cache_control": {"type": "ephemeral"}}
    body = sent({"messages": [{"role": "system", "content": [part]}, {"role": "user", "content": [part]}]})
    assert body["system"] == [{"type": "text", "text": "long doc", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}


HISTORY = [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call:1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": ""}}]},
    {"role": "tool", "tool_call_id": "call:1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": ""},
]


def test_tool_calls_and_results_in_history():
    body = sent({"messages": HISTORY})
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "w", "input": {}}]}
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2"}]}


def test_tool_results_come_first_in_a_merged_user_turn():
    messages = [*HISTORY[:2], {"role": "user", "content": "hurry"}, *HISTORY[2:]]
    blocks = sent({"messages": messages})["messages"][2]["content"]
    assert [b["type"] for b in blocks] == ["tool_result", "tool_result", "text"]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_bad_tool_arguments_are_rejected(arguments):
    messages = [USER[0], {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "w", "arguments": arguments}}]}]
    with pytest.raises(InvalidRequest):
        sent({"messages": messages})


def test_images():
    content = [{"type": "text", "text": "look"},
               {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
               {"type": "image_url", "image_url": "https://example.com/a.png"}]
    blocks = sent({"messages": [{"role": "user", "content": content}]})["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}


def test_pdf_file_part():
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}}
    block = sent({"messages": [{"role": "user", "content": [part]}]})["messages"][0]["content"][0]
    assert block == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}


@pytest.mark.parametrize(("part", "error"), [
    ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}, InvalidRequest),
    ({"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}, InvalidRequest),
    ({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}, InvalidRequest),
    ({"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}, UnsupportedParameter),
    ({"type": "file", "file": {"file_id": "file-123"}}, UnsupportedParameter),
])
def test_bad_parts(part, error):
    with pytest.raises(error) as info:
        sent({"messages": [{"role": "user", "content": [part]}]})
    assert info.value.param == "messages"


def test_unknown_role_and_missing_tool_id():
    with pytest.raises(InvalidRequest):
        sent({"messages": [{"role": "function", "name": "f", "content": "x"}]})
    with pytest.raises(InvalidRequest):
        sent({"messages": [USER[0], {"role": "tool", "content": "x"}]})


# -- requests: parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [(0.3, 0.3), (1.0, 1.0), (1.7, 1.0), (2, 1.0), (-0.5, 0.0)])
def test_temperature_is_clamped(given, expected):
    assert sent({"temperature": given})["temperature"] == expected


def test_temperature_and_top_p():
    assert sent({"top_p": 0.8})["top_p"] == 0.8
    both = sent({"temperature": 0.5, "top_p": 0.8})
    assert both["temperature"] == 0.5 and "top_p" not in both
    allowed = sent({"temperature": 0.5, "top_p": 0.8}, p=provider(allow_temperature_with_top_p=True))
    assert (allowed["temperature"], allowed["top_p"]) == (0.5, 0.8)
    with pytest.raises(InvalidRequest):
        sent({"temperature": "hot"})


def test_max_tokens():
    assert sent({})["max_tokens"] == 4096
    assert sent({}, p=provider(default_max_tokens=1000))["max_tokens"] == 1000
    assert sent({"max_tokens": 50})["max_tokens"] == 50
    assert sent({"max_tokens": 50, "max_completion_tokens": 70})["max_tokens"] == 70
    with pytest.raises(InvalidRequest):
        sent({"max_tokens": "many"})


def test_stop_user_and_safety_identifier():
    assert sent({"stop": "END"})["stop_sequences"] == ["END"]
    assert sent({"stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in sent({"stop": []})
    assert sent({"user": "u-1"})["metadata"] == {"user_id": "u-1"}
    assert sent({"safety_identifier": "s-1"})["metadata"] == {"user_id": "s-1"}


TOOL = {"type": "function", "function": {"name": "w", "description": "weather",
                                         "parameters": {"type": "object", "properties": {"c": {"type": "string"}}}}}


def test_tools():
    body = sent({"tools": [TOOL, {"type": "function", "function": {"name": "now", "strict": True}}]})
    assert body["tools"] == [{"name": "w", "description": "weather", "input_schema": TOOL["function"]["parameters"]},
                             {"name": "now", "input_schema": {"type": "object", "properties": {}}, "strict": True}]
    assert "tool_choice" not in body
    with pytest.raises(UnsupportedParameter):
        sent({"tools": [{"type": "custom", "custom": {"name": "x"}}]})


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "w"}}, None, {"type": "tool", "name": "w"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    (None, True, None),
])
def test_tool_choice(choice, parallel, expected):
    body = sent({"tools": [TOOL], "tool_choice": choice, "parallel_tool_calls": parallel})
    assert body.get("tool_choice") == expected


def test_tool_choice_without_tools_is_not_sent_and_unknown_choice_is_refused():
    assert "tool_choice" not in sent({"tool_choice": "auto"})
    with pytest.raises(UnsupportedParameter):
        sent({"tools": [TOOL], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}})


def test_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    body = sent({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    emulated = sent({"response_format": {"type": "json_object"}})
    assert "JSON object" in emulated["system"] and "output_config" not in emulated
    assert "system" not in sent({"response_format": {"type": "text"}})
    with pytest.raises(UnsupportedParameter):
        sent({"response_format": {"type": "json_object"}}, p=provider(emulate_json_object=False))
    with pytest.raises(InvalidRequest):
        sent({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})


def test_reasoning_effort():
    assert sent({"reasoning_effort": "high"})["output_config"] == {"effort": "high"}
    assert sent({"reasoning_effort": "minimal"})["output_config"] == {"effort": "low"}
    assert "output_config" not in sent({"reasoning_effort": "none"})


@pytest.mark.parametrize(("field", "value"), [
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("seed", 1), ("presence_penalty", 0.5),
    ("frequency_penalty", 0.1), ("logit_bias", {"1": 2}), ("audio", {"voice": "x"}), ("modalities", ["audio"]),
    ("prediction", {"type": "content"}), ("functions", [{}]), ("store", True), ("metadata", {"a": "b"}),
    ("service_tier", "flex"),
])
def test_unsupported_params(field, value):
    with pytest.raises(UnsupportedParameter) as info:
        sent({field: value})
    assert info.value.param == field and "anthropic" in info.value.message
    assert field not in sent({field: value}, p=provider(drop=True))


def test_noop_values_are_not_unsupported():
    body = sent({"n": 1, "logprobs": False, "presence_penalty": 0, "modalities": ["text"], "store": False,
                 "service_tier": "auto", "seed": None})
    for field in ("n", "logprobs", "presence_penalty", "modalities", "store", "service_tier", "seed"):
        assert field not in body


def test_anthropic_extras_pass_through_and_forbidden_fields_do_not():
    body = sent({"top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 2048}, "api_key": "sk-client",
                 "api_base": "http://evil", "prompt_cache_key": "k", "output_config": {"effort": "max"},
                 "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}})
    assert body["top_k"] == 5 and body["thinking"]["budget_tokens"] == 2048
    assert body["output_config"] == {"effort": "max", "format": {"type": "json_schema", "schema": {"type": "object"}}}
    for field in ("api_key", "api_base", "prompt_cache_key"):
        assert field not in body


def test_the_client_body_is_not_mutated():
    body = {"model": "m", "messages": [dict(m) for m in HISTORY], "tools": [TOOL], "temperature": 2}
    snapshot = orjson.dumps(body)
    provider().build_chat(Call(body=body, model="x"))
    assert orjson.dumps(body) == snapshot


# -- responses ------------------------------------------------------------------------------------


def message(content, stop_reason="end_turn", usage=None, model="claude-sonnet-4-6-20260101"):
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": usage or {"input_tokens": 3, "output_tokens": 4}}


def parse(body):
    translated = provider().parse_chat(call({}), reply(body))
    return orjson.loads(translated.body), translated


def test_response_text_and_shape():
    data, translated = parse(message([thinking("hmm"), text("Hello "), text("world")]))
    validate("CreateChatCompletionResponse", data)
    assert data["id"] == "chatcmpl-req1" and data["object"] == "chat.completion" and data["created"] == 1
    assert data["model"] == "claude-sonnet-4-6-20260101" == translated.model
    assert data["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello world", "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]


def test_response_tool_calls():
    data, _ = parse(message([tool_use("w", {"city": "Paris"}, "toolu_A"), tool_use("now", {}, "toolu_B")], "tool_use"))
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_A", "type": "function", "function": {"name": "w", "arguments": '{"city":"Paris"}'}},
        {"id": "toolu_B", "type": "function", "function": {"name": "now", "arguments": "{}"}}]


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    (None, "stop"), ("something_new", "stop"),
])
def test_finish_reasons(stop_reason, finish):
    assert parse(message([text("x")], stop_reason))[0]["choices"][0]["finish_reason"] == finish


def test_usage():
    usage = {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 30,
             "cache_read_input_tokens": 40, "output_tokens_details": {"thinking_tokens": 5}}
    data, translated = parse(message([text("x")], usage=usage))
    assert data["usage"] == {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100,
                             "prompt_tokens_details": {"cached_tokens": 40},
                             "completion_tokens_details": {"reasoning_tokens": 5}}
    assert (translated.usage.prompt_tokens, translated.usage.cached_tokens) == (80, 40)


def test_model_falls_back_to_the_call_and_bad_bodies_fail():
    data, _ = parse({**message([text("x")]), "model": None})
    assert data["model"] == "claude-sonnet-4-6"
    with pytest.raises(UpstreamError):
        provider().parse_chat(call({}), reply(b"<html>"))
    with pytest.raises(UpstreamError):
        provider().parse_chat(call({}), reply({"type": "message"}))


# -- errors ---------------------------------------------------------------------------------------


def error_body(kind, text_="nope"):
    return {"type": "error", "error": {"type": kind, "message": text_}, "request_id": "req_1"}


@pytest.mark.parametrize(("status", "kind", "text_", "cls", "code", "http"), [
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", ContextLengthExceeded,
     "context_length_exceeded", 400),
    (400, "invalid_request_error", "input length and `max_tokens` exceed context limit: 1 + 2 > 3",
     ContextLengthExceeded, "context_length_exceeded", 400),
    (400, "invalid_request_error", "messages: bad", UpstreamClientError, None, 400),
    (401, "authentication_error", "invalid x-api-key", InvalidApiKey, "invalid_api_key", 401),
    (402, "billing_error", "credit balance too low", UpstreamRateLimited, "insufficient_quota", 429),
    (403, "permission_error", "no", PermissionDenied, "permission_denied", 403),
    (404, "not_found_error", "model: x", ModelNotFound, "model_not_found", 404),
    (413, "request_too_large", "too big", RequestTooLarge, "request_too_large", 413),
    (429, "rate_limit_error", "slow", UpstreamRateLimited, "rate_limit_exceeded", 429),
    (500, "api_error", "oops", UpstreamError, "upstream_error", 502),
    (504, "timeout_error", "late", UpstreamTimeout, "timeout", 504),
    (529, "overloaded_error", "Overloaded", Overloaded, "overloaded", 503),
])
def test_error_mapping(status, kind, text_, cls, code, http):
    error = provider().map_error(reply(error_body(kind, text_), status))
    assert type(error) is cls and error.code == code and error.status == http
    if cls is ContextLengthExceeded:
        assert error.param == "messages"


def test_billing_is_insufficient_quota_type():
    error = provider().map_error(reply(error_body("billing_error"), 402))
    assert error.envelope()["error"]["type"] == "insufficient_quota"


def test_retry_after_is_kept():
    error = provider().map_error(reply(error_body("rate_limit_error"), 429, {"retry-after": "12"}))
    assert error.retry_after == 12 and error.response_headers()["retry-after"] == "12"
    overloaded = provider().map_error(reply(error_body("overloaded_error"), 529, {"retry-after": "3"}))
    assert overloaded.retry_after == 3


def test_key_is_never_echoed():
    error = provider().map_error(reply(error_body("authentication_error", f"invalid x-api-key {KEY}"), 401))
    assert KEY not in error.message
    other = provider().map_error(reply(error_body("invalid_request_error", f"bad key {KEY} here"), 400))
    assert KEY not in other.message


def test_non_json_error_body():
    error = provider().map_error(reply(b"<html>Bad Gateway</html>", 502))
    assert isinstance(error, UpstreamError) and "Bad Gateway" in error.message


# -- streams --------------------------------------------------------------------------------------


def sse_for(content, stop_reason="end_turn", usage=None, chunk=3, upto=None, extra=b""):
    state = FakeState("k", True)
    msg = _message(state, Reply(content=content, stop_reason=stop_reason,
                                usage=usage or {"input_tokens": 7, "output_tokens": 9}), {"model": "claude-x"})
    events = stream_events(msg, chunk)[:upto]
    return b"".join(encode_event(name, payload) for name, payload in events) + extra


def run(raw: bytes, include_usage=False, pieces=1):
    translator = provider().stream_translator(call({"stream": True}, stream=True, include_usage=include_usage))
    size = max(1, len(raw) // pieces)
    frames = []
    for i in range(0, len(raw), size):
        frames += translator.feed(raw[i:i + size])
    frames += translator.finish()
    chunks = [orjson.loads(part[6:]) for frame in frames for part in frame.split(b"\n\n") if part]
    return chunks, translator


def test_stream_text_and_finish():
    chunks, translator = run(sse_for([thinking("deep"), text("Hello world")]))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello world"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all("usage" not in c for c in chunks)  # the client did not ask
    assert translator.model == "claude-x"
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (7, 9)


def test_stream_usage_chunk():
    chunks, _ = run(sse_for([text("hi")], usage={"input_tokens": 7, "output_tokens": 9,
                                                  "cache_read_input_tokens": 5}), include_usage=True)
    assert chunks[-1]["choices"] == []
    validate("CreateChatCompletionStreamResponse", chunks[-1])
    assert chunks[-1]["usage"]["prompt_tokens"] == 12 and chunks[-1]["usage"]["completion_tokens"] == 9
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_tool_call_deltas():
    raw = sse_for([text("Let me see."), tool_use("w", {"city": "Paris"}, "toolu_A"),
                   tool_use("now", {"tz": "UTC"}, "toolu_B")], "tool_use")
    chunks, _ = run(raw, pieces=7)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    headers = [tc for tc in calls if "id" in tc]
    assert headers == [
        {"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "w", "arguments": ""}},
        {"index": 1, "id": "toolu_B", "type": "function", "function": {"name": "now", "arguments": ""}}]
    arguments = {0: "", 1: ""}
    for tc in calls:
        if "id" not in tc:
            assert set(tc) == {"index", "function"}
            arguments[tc["index"]] += tc["function"]["arguments"]
    assert orjson.loads(arguments[0]) == {"city": "Paris"} and orjson.loads(arguments[1]) == {"tz": "UTC"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_tool_input_given_whole_in_block_start():
    raw = (encode_event("message_start", {"type": "message_start", "message": {"model": "m", "usage": {}}})
           + encode_event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
               "type": "tool_use", "id": "t1", "name": "w", "input": {"a": 1}}})
           + encode_event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {
               "output_tokens": 3, "input_tokens": 11}})
           + encode_event("message_stop", {"type": "message_stop"}))
    chunks, translator = run(raw)
    assert chunks[2]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "function": {"arguments": '{"a":1}'}}]
    assert translator.usage.prompt_tokens == 11 and translator.usage.completion_tokens == 3


def test_stream_without_message_delta_still_finishes():
    raw = sse_for([text("x")])
    raw = raw.replace(b"event: message_delta", b"event: ignored_event").replace(b'"type":"message_delta"', b'"type":"ignored_event"')
    chunks, _ = run(raw)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_truncated_raises():
    with pytest.raises(UpstreamError) as info:
        run(sse_for([text("Hello world")], upto=5))
    assert "message_stop" in info.value.message


@pytest.mark.parametrize(("kind", "cls"), [("overloaded_error", Overloaded), ("rate_limit_error", UpstreamRateLimited),
                                           ("api_error", UpstreamError), ("invalid_request_error", UpstreamClientError),
                                           ("mystery_error", UpstreamError)])
def test_stream_error_event(kind, cls):
    error = encode_event("error", {"type": "error", "error": {"type": kind, "message": "bad things"}})
    with pytest.raises(GatewayError) as info:
        run(sse_for([text("Hello world")], upto=5, extra=error))
    assert type(info.value) is cls


def test_stream_error_after_content_keeps_the_frames_already_made():
    error = encode_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    translator = provider().stream_translator(call({}, stream=True))
    frames = translator.feed(sse_for([text("Hello world")], upto=5, extra=error))
    assert frames  # the content seen before the error still reaches the client
    with pytest.raises(Overloaded):
        translator.finish()


def test_stream_error_before_content_raises_at_once():
    error = encode_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    translator = provider().stream_translator(call({}, stream=True))
    with pytest.raises(Overloaded):
        translator.feed(sse_for([text("Hello world")], upto=3, extra=error))


def test_stream_event_that_is_not_json():
    with pytest.raises(UpstreamError):
        run(b"event: message_start\ndata: {oops\n\n")


# -- models ---------------------------------------------------------------------------------------


def test_list_models():
    p = provider()
    request = p.build_list_models()
    assert (request.method, request.url) == ("GET", "https://api.anthropic.com/v1/models?limit=1000")
    assert request.headers["x-api-key"] == KEY and request.headers["anthropic-version"] == "2023-06-01"
    models = p.parse_list_models(reply({"data": [
        {"type": "model", "id": "claude-a", "display_name": "A", "created_at": "2025-02-19T00:00:00Z"},
        {"type": "model", "id": "claude-b", "display_name": "B", "created_at": "garbage"}],
        "has_more": False, "first_id": "claude-a", "last_id": "claude-b"}))
    assert models[0] == {"type": "model", "id": "claude-a", "display_name": "A", "created_at": "2025-02-19T00:00:00Z",
                         "created": 1739923200, "object": "model", "owned_by": "anthropic"}
    assert models[1]["created"] == 0
    with pytest.raises(UpstreamError):
        p.parse_list_models(reply({"models": []}))


def test_embeddings_are_refused():
    with pytest.raises(UnsupportedParameter):
        provider().build_embeddings(Call(body={"model": "x", "input": "y"}, model="x", endpoint="embeddings"))
