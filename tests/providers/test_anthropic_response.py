"""Anthropic responses: chat.completion, finish reasons, usage, model listing.

Whole recorded cases live in tests/golden/anthropic/*.json; these tests pin the rules one at a time.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import UpstreamError
from tests.fakes.anthropic import text, thinking, tool_use
from tests.providers.anthropic_helpers import KEY, call, provider, reply
from tests.schemas import validate

pytestmark = pytest.mark.timeout(30)


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
