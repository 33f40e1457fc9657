"""Mistral translation: renamed fields, tool-call ids both ways, embeddings."""

from __future__ import annotations

import re

import orjson
import pytest

from gateway.errors import UnsupportedParameter
from providers.mistral import mistral_tool_id
from tests.providers.dialect_helpers import call, chunk, frames, provider, response, sse

pytestmark = pytest.mark.timeout(10)


def test_tool_ids():
    assert mistral_tool_id("Ab3dE6gH9") == "Ab3dE6gH9"  # Mistral's own ids pass unchanged
    mapped = mistral_tool_id("call_abc123")
    assert re.fullmatch(r"[A-Za-z0-9]{9}", mapped) and mapped == mistral_tool_id("call_abc123")
    assert mapped != mistral_tool_id("call_abc124")


def test_request_mapping():
    p = provider("mistral", safe_prompt=False)
    body = {"model": "x", "seed": 3, "max_completion_tokens": 9, "tool_choice": "required", "user": "u", "store": True,
            "stream": True, "stream_options": {"include_usage": True}, "messages": [
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "r"}]}
    c = call(body, stream=True, include_usage=True)
    sent = orjson.loads(p.build_chat(c).body)
    assert sent["random_seed"] == 3 and sent["max_tokens"] == 9 and sent["tool_choice"] == "any"
    assert sent["safe_prompt"] is False
    assert not {"seed", "max_completion_tokens", "user", "store", "stream_options"} & set(sent)
    mapped = mistral_tool_id("call_1")
    assert sent["messages"][0]["tool_calls"][0]["id"] == mapped == sent["messages"][1]["tool_call_id"]
    assert body["messages"][0]["tool_calls"][0]["id"] == "call_1"  # the client's body is not mutated
    assert c.scratch["mistral_tool_ids"] == {mapped: "call_1"}


def test_safe_prompt_not_sent_by_default_and_client_value_wins():
    assert "safe_prompt" not in orjson.loads(provider("mistral").build_chat(call({"messages": []})).body)
    request = provider("mistral", safe_prompt=True).build_chat(call({"messages": [], "safe_prompt": False}))
    sent = orjson.loads(request.body)
    assert sent["safe_prompt"] is False


def test_unsupported_param():
    with pytest.raises(UnsupportedParameter):
        provider("mistral").build_chat(call({"messages": [], "logit_bias": {"1": 2}}))


def test_ids_restored_in_answers_and_streams():
    p = provider("mistral")
    c = call({"messages": [{"role": "assistant", "tool_calls": [{"id": "call_x"}]},
                           {"role": "tool", "tool_call_id": "call_x", "content": ""}]}, stream=True)
    p.build_chat(c)
    mapped = mistral_tool_id("call_x")
    translator = p.stream_translator(c)
    out = frames(translator.feed(sse(chunk({"tool_calls": [{"index": 0, "id": mapped, "function": {
        "name": "f", "arguments": "{}"}}]}, "tool_calls"))))
    assert out[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_x"
    answer = {"id": "a", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                                                                "tool_calls": [{"id": mapped, "function": {}}]}}]}
    parsed = orjson.loads(p.parse_chat(c, response(200, answer)).body)
    assert parsed["choices"][0]["message"]["tool_calls"][0]["id"] == "call_x"


def test_embeddings_dimensions():
    sent = orjson.loads(provider("mistral").build_embeddings(call({"input": "a", "dimensions": 3,
                                                                   "encoding_format": "float"},
                                                                  endpoint="embeddings")).body)
    assert sent == {"input": "a", "output_dimension": 3, "model": "m"}
