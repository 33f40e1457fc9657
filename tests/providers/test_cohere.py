"""Cohere v2 translation: request mapping, responses, finish reasons, usage, errors and streams.

Whole recorded cases live in tests/golden/cohere/*.json; these tests pin the rules one at a time.
"""

from __future__ import annotations

import base64
from array import array

import orjson
import pytest

from gateway.errors import (
    ContextLengthExceeded,
    InvalidApiKey,
    InvalidRequest,
    UnsupportedParameter,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from providers.base import Call, ProviderConfig, UpstreamResponse
from providers.cohere import CohereProvider
from providers.registry import Registry

pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "hi"}]


def provider(**options) -> CohereProvider:
    defaults = {name: spec.default for name, spec in CohereProvider.options.items()}
    defaults.update(options)
    return CohereProvider(ProviderConfig(name="co", type="cohere", api_base="https://api.cohere.com/",
                                         api_key="co-secret-key-123", options=defaults))


def call(body, **kw) -> Call:
    return Call(body={"model": "alias", **body}, model="command-a-03-2025", request_id="req-1", created=1, **kw)


def sent(body, **kw) -> dict:
    request = provider().build_chat(call(body, **kw))
    return orjson.loads(request.body)


def reply(body: dict, status: int = 200, headers=None) -> UpstreamResponse:
    return UpstreamResponse(status=status, headers=headers or {}, body=orjson.dumps(body))


def test_registry_path():
    assert Registry().get("cohere") is CohereProvider


# -- requests -------------------------------------------------------------------------------------


def test_request_url_headers_and_model():
    request = provider(client_name="switchyard").build_chat(call({"messages": USER}))
    assert request.method == "POST" and request.url == "https://api.cohere.com/v2/chat"
    assert request.headers["authorization"] == "Bearer co-secret-key-123"
    assert request.headers["x-client-name"] == "switchyard"
    assert orjson.loads(request.body)["model"] == "command-a-03-2025"
    assert request.stream is False


def test_stream_request():
    request = provider().build_chat(call({"messages": USER, "stream": True}, stream=True))
    assert request.stream is True and orjson.loads(request.body)["stream"] is True
    assert request.headers["accept"] == "text/event-stream"


def test_leading_system_and_developer_messages_merge_first():
    body = sent({"messages": [{"role": "developer", "content": "A"}, {"role": "system", "content": "B"},
                              *USER, {"role": "system", "content": "later"}]})
    assert body["messages"] == [{"role": "system", "content": "A\n\nB"}, *USER,
                                {"role": "system", "content": "later"}]


@pytest.mark.parametrize(("field", "value", "native", "expected"), [
    ("temperature", 0.5, "temperature", 0.5),
    ("top_p", 0.8, "p", 0.8),
    ("max_tokens", 10, "max_tokens", 10),
    ("max_completion_tokens", 12, "max_tokens", 12),
    ("stop", "x", "stop_sequences", ["x"]),
    ("stop", ["a", "b"], "stop_sequences", ["a", "b"]),
    ("seed", 3, "seed", 3),
    ("presence_penalty", 0.2, "presence_penalty", 0.2),
    ("frequency_penalty", 0.1, "frequency_penalty", 0.1),
    ("response_format", {"type": "json_object"}, "response_format", {"type": "json_object"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
     "response_format", {"type": "json_object", "json_schema": {"type": "object"}}),
    ("safety_mode", "STRICT", "safety_mode", "STRICT"),  # Cohere-only fields pass through
])
def test_field_mapping(field, value, native, expected):
    body = sent({"messages": USER, field: value})
    assert body[native] == expected
    if native != field:
        assert field not in body


def test_max_completion_tokens_wins_and_text_format_omitted():
    body = sent({"messages": USER, "max_tokens": 5, "max_completion_tokens": 9, "response_format": {"type": "text"}})
    assert body["max_tokens"] == 9 and "response_format" not in body


@pytest.mark.parametrize(("choice", "native"), [("auto", None), ("none", "NONE"), ("required", "REQUIRED")])
def test_tool_choice(choice, native):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = sent({"messages": USER, "tools": tools, "tool_choice": choice})
    assert body.get("tool_choice") == native
    assert body["tools"] == tools


def test_named_tool_choice_keeps_only_that_tool():
    tools = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in ("a", "b")]
    body = sent({"messages": USER, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "b"}}})
    assert body["tool_choice"] == "REQUIRED" and [t["function"]["name"] for t in body["tools"]] == ["b"]
    with pytest.raises(InvalidRequest):
        sent({"messages": USER, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "zz"}}})


def test_assistant_tool_calls_and_tool_results():
    body = sent({"messages": [*USER,
                              {"role": "assistant", "content": None, "tool_calls": [
                                  {"id": "c1", "type": "function",
                                   "function": {"name": "f", "arguments": {"x": 1}}}]},
                              {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]}]})
    assert body["messages"][1] == {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]}


def test_image_parts():
    body = sent({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})
    assert body["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with pytest.raises(UnsupportedParameter):
        sent({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})


@pytest.mark.parametrize(("field", "value"), [("user", "u1"), ("n", 2), ("logprobs", True), ("logit_bias", {"1": 1}),
                                              ("parallel_tool_calls", False)])
def test_unsupported_fields_rejected_or_dropped(field, value):
    with pytest.raises(UnsupportedParameter) as info:
        sent({"messages": USER, field: value})
    assert info.value.param == field and "cohere" in info.value.message
    dropping = CohereProvider(ProviderConfig(name="co", type="cohere", api_base="http://x", api_key="k",
                                             drop_unsupported_params=True))
    assert field not in orjson.loads(dropping.build_chat(call({"messages": USER, field: value})).body)


def test_harmless_values_are_accepted():
    body = sent({"messages": USER, "n": 1, "logprobs": False, "parallel_tool_calls": True})
    assert not {"n", "logprobs", "parallel_tool_calls"} & set(body)


# -- responses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("native", "expected"), [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"),
                                                  ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls"),
                                                  ("SOMETHING_NEW", "stop")])
def test_finish_reason_table(native, expected):
    out = provider().parse_chat(call({"messages": USER}), reply(
        {"finish_reason": native, "message": {"content": [{"type": "text", "text": "x"}]}}))
    assert orjson.loads(out.body)["choices"][0]["finish_reason"] == expected


@pytest.mark.parametrize(("native", "error"), [("ERROR", UpstreamError), ("TIMEOUT", UpstreamTimeout)])
def test_failed_finish_reasons_raise(native, error):
    with pytest.raises(error):
        provider().parse_chat(call({"messages": USER}), reply({"finish_reason": native, "message": {}}))


def test_usage_floats_and_fallback():
    p = provider()
    out = p.parse_chat(call({"messages": USER}), reply({"finish_reason": "COMPLETE", "message": {"content": []},
                                                         "usage": {"tokens": {"input_tokens": 10.0,
                                                                              "output_tokens": 2.0}}}))
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (10, 2)
    assert isinstance(orjson.loads(out.body)["usage"]["prompt_tokens"], int)
    out = p.parse_chat(call({"messages": USER}), reply({"finish_reason": "COMPLETE", "message": {"content": []},
                                                         "usage": {"billed_units": {"input_tokens": 4.0,
                                                                                    "output_tokens": 1}}}))
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (4, 1)


def test_response_shape_text_thinking_and_ids():
    out = provider().parse_chat(call({"messages": USER}), reply({"id": "cohere-id", "finish_reason": "COMPLETE",
                                                                 "message": {"content": [
                                                                     {"type": "thinking", "thinking": "hmm"},
                                                                     {"type": "text", "text": "a"},
                                                                     {"type": "text", "text": "b"}]}}))
    body = orjson.loads(out.body)
    assert body["id"] == "chatcmpl-req1" and body["object"] == "chat.completion" and body["created"] == 1
    assert body["model"] == "command-a-03-2025"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "ab", "refusal": None,
                                             "reasoning_content": "hmm"}


def test_non_json_body_is_upstream_error():
    with pytest.raises(UpstreamError):
        provider().parse_chat(call({"messages": USER}), UpstreamResponse(200, {}, b"<html>"))


# -- embeddings and models ------------------------------------------------------------------------


def test_embeddings_request_and_base64_response():
    p = provider(embed_input_type="clustering")
    c = Call(body={"model": "e", "input": ["x", "y"], "dimensions": 256, "encoding_format": "base64"},
             model="embed-v4.0", endpoint="embeddings")
    request = p.build_embeddings(c)
    assert request.url == "https://api.cohere.com/v2/embed"
    assert orjson.loads(request.body) == {"model": "embed-v4.0", "texts": ["x", "y"], "input_type": "clustering",
                                          "embedding_types": ["float"], "output_dimension": 256}
    out = p.parse_embeddings(c, reply({"embeddings": {"float": [[1.5, -2.0], [0.0, 0.25]]},
                                       "meta": {"billed_units": {"input_tokens": 3.0}}}))
    body = orjson.loads(out.body)
    decoded = array("f", base64.b64decode(body["data"][1]["embedding"])).tolist()
    assert decoded == [0.0, 0.25]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3} and out.usage.prompt_tokens == 3


def test_client_input_type_overrides_option():
    c = Call(body={"model": "e", "input": "x", "input_type": "search_query"}, model="embed-v4.0", endpoint="embeddings")
    assert orjson.loads(provider().build_embeddings(c).body)["input_type"] == "search_query"


def test_list_models():
    p = provider()
    assert p.build_list_models().url == "https://api.cohere.com/v1/models?page_size=1000"
    models = p.parse_list_models(reply({"models": [{"name": "command-a", "endpoints": ["chat"],
                                                    "context_length": 256000.0}], "next_page_token": None}))
    assert models == [{"name": "command-a", "endpoints": ["chat"], "context_length": 256000.0, "id": "command-a",
                       "object": "model", "created": 0, "owned_by": "cohere"}]


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "cls", "code"), [
    (401, {"message": "invalid api token"}, InvalidApiKey, "invalid_api_key"),
    (498, {"message": "invalid token"}, InvalidApiKey, "invalid_api_key"),
    (400, {"message": "too many tokens: prompt exceeds"}, ContextLengthExceeded, "context_length_exceeded"),
    (400, {"message": "invalid request: bad"}, UpstreamClientError, None),
    (402, {"message": "add a card"}, UpstreamRateLimited, "insufficient_quota"),
    (422, {"message": "invalid"}, UpstreamClientError, None),
    (500, {"message": "oops"}, UpstreamError, "upstream_error"),
    (504, {"message": "slow"}, UpstreamTimeout, "timeout"),
])
def test_error_mapping(status, body, cls, code):
    error = provider().map_error(reply(body, status))
    assert type(error) is cls and error.code == code
    assert error.message == body["message"]


def test_429_keeps_retry_after_and_key_is_scrubbed():
    error = provider().map_error(reply({"message": "slow down co-secret-key-123"}, 429, {"retry-after": "9"}))
    assert isinstance(error, UpstreamRateLimited) and error.retry_after == 9.0
    assert "co-secret-key-123" not in error.message
    assert error.status == 429


def test_context_length_error_names_messages():
    error = provider().map_error(reply({"message": "too many tokens: 300000 > 256000"}, 400))
    assert error.param == "messages" and error.status == 400


# -- streams --------------------------------------------------------------------------------------


def frames_of(translator, raw: bytes) -> list[dict]:
    out = translator.feed(raw) + translator.finish()
    return [orjson.loads(f[len(b"data: "):]) for f in out]


def event(kind: str, **payload) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **payload}) + b"\n\n"


def test_stream_tool_call_deltas_and_usage():
    c = call({"messages": USER, "stream": True}, stream=True, include_usage=True)
    raw = (event("message-start", delta={"message": {"role": "assistant"}})
           + event("tool-call-start", index=0, delta={"message": {"tool_calls": {
               "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}}})
           + event("tool-call-delta", index=0, delta={"message": {"tool_calls": {"function": {"arguments": "{}"}}}})
           + event("message-end", delta={"finish_reason": "TOOL_CALL",
                                         "usage": {"tokens": {"input_tokens": 3.0, "output_tokens": 1.0}}}))
    translator = provider().stream_translator(c)
    chunks = frames_of(translator, raw)
    deltas = [ch["choices"][0]["delta"] if ch["choices"] else None for ch in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"tool_calls": [{"index": 0, "id": "t1", "type": "function",
                                         "function": {"name": "f", "arguments": ""}}]}
    assert deltas[2] == {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["total_tokens"] == 4
    assert translator.usage.prompt_tokens == 3 and translator.model == "command-a-03-2025"


def test_stream_without_event_lines_and_with_done_sentinel():
    c = call({"messages": USER, "stream": True}, stream=True)
    raw = (b'data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"yo"}}}}\n\n'
           b'data: {"type":"message-end","delta":{"finish_reason":"MAX_TOKENS"}}\n\ndata: [DONE]\n\n')
    chunks = frames_of(provider().stream_translator(c), raw)
    assert [ch["choices"][0]["delta"] for ch in chunks[:2]] == [{"role": "assistant", "content": ""},
                                                                 {"content": "yo"}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and "usage" not in chunks[-1]


def test_truncated_stream_raises_after_the_text():
    c = call({"messages": USER, "stream": True}, stream=True)
    translator = provider().stream_translator(c)
    frames = translator.feed(event("message-start", delta={})
                             + event("content-delta", index=0, delta={"message": {"content": {"text": "par"}}}))
    assert len(frames) == 2
    with pytest.raises(UpstreamError, match="message-end"):
        translator.finish()


def test_stream_error_finish_keeps_earlier_frames():
    c = call({"messages": USER, "stream": True}, stream=True)
    translator = provider().stream_translator(c)
    frames = translator.feed(event("content-delta", index=0, delta={"message": {"content": {"text": "a"}}})
                             + event("message-end", delta={"finish_reason": "ERROR", "error": "boom"}))
    assert len(frames) == 2
    with pytest.raises(UpstreamError, match="boom"):
        translator.finish()


def test_stream_non_json_event_is_an_error():
    translator = provider().stream_translator(call({"messages": USER}, stream=True))
    with pytest.raises(UpstreamError):
        translator.feed(b"event: content-delta\ndata: {nope\n\n")
