"""Anthropic requests: registry entry, URL, headers, options, messages, parameters.

Whole recorded cases live in tests/golden/anthropic/*.json; these tests pin the rules one at a time.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.config import ConfigError, parse_config
from gateway.errors import InvalidRequest, UnsupportedParameter
from providers.anthropic import AnthropicProvider
from providers.base import Call
from providers.registry import Registry
from tests.providers.anthropic_helpers import KEY, USER, call, provider

pytestmark = pytest.mark.timeout(30)


def sent(body, p=None, **kw) -> dict:
    return orjson.loads((p or provider()).build_chat(call(body, **kw)).body)


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


def test_embeddings_are_refused():
    with pytest.raises(UnsupportedParameter):
        provider().build_embeddings(Call(body={"model": "x", "input": "y"}, model="x", endpoint="embeddings"))
