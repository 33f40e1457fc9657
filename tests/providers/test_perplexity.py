"""Perplexity translation: the Agent API both ways (request allow-list, status handling, typed stream
events) and Sonar's quirks."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import InvalidRequest, UnsupportedParameter, UpstreamClientError, UpstreamError, UpstreamRateLimited
from providers.perplexity import agent_request, agent_response
from tests.providers.dialect_helpers import call, frames, provider, response, sse

pytestmark = pytest.mark.timeout(10)

USER = [{"role": "user", "content": "hi"}]


def sent(body, model="openai/gpt-5.1", **options):
    return orjson.loads(provider("perplexity", api_base="https://api.perplexity.ai", **options)
                        .build_chat(call(body, model=model, stream=bool(body.get("stream")))).body)


def test_unsupported_fields():
    assert agent_request.unsupported({"messages": [], "n": 1, "user": "u", "stream_options": {}}) == frozenset()
    assert agent_request.unsupported({"stop": "x", "n": 2, "seed": 1, "logprobs": True, "x_new": 1}) == \
        {"stop", "n", "seed", "logprobs", "x_new"}
    with pytest.raises(UnsupportedParameter):
        sent({"messages": USER, "presence_penalty": 1})
    assert sent({"messages": USER, "presence_penalty": 1}, drop=True) == \
        {"model": "openai/gpt-5.1", "input": [{"type": "message", "role": "user", "content": "hi"}]}


def test_request_mapping():
    body = sent({"messages": [{"role": "developer", "content": "A"}, *USER,
                              {"role": "system", "content": "late system"}],
                 "max_completion_tokens": 5, "max_tokens": 9, "stream": True, "stream_options": {"include_usage": True},
                 "response_format": {"type": "text"}, "tool_choice": "auto"})
    assert body == {"model": "openai/gpt-5.1", "instructions": "A", "stream": True, "max_output_tokens": 5,
                    "tool_choice": "auto", "input": [{"type": "message", "role": "user", "content": "hi"},
                                                     {"type": "message", "role": "system", "content": "late system"}]}


def test_preset_and_search_tool():
    body = sent({"messages": USER, "web_search_options": {"user_location": {"approximate": {"country": "FR"}}},
                 "tools": [{"type": "fetch_url"}]}, model="preset:fast")
    assert body["preset"] == "fast" and "model" not in body
    assert body["tools"] == [{"type": "fetch_url"}, {"type": "web_search", "user_location": {"country": "FR"}}]


def test_content_parts():
    with pytest.raises(UnsupportedParameter):
        sent({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})
    with pytest.raises(InvalidRequest):
        sent({"messages": []})
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert sent({"messages": [{"role": "user", "content": parts}]})["input"][0]["content"] == "ab"


def test_finish_reasons_and_failures():
    assert agent_response.finish_reason({"status": "completed"}, False) == "stop"
    assert agent_response.finish_reason({"status": "completed"}, True) == "tool_calls"
    assert agent_response.finish_reason({"status": "incomplete", "incomplete_details": {
        "reason": "max_output_tokens"}}, False) == "length"
    assert agent_response.finish_reason({"status": "incomplete", "incomplete_details": {
        "reason": "content_filter"}}, False) == "content_filter"
    p = provider("perplexity")
    assert isinstance(agent_response.failure(p, {"status": "failed", "error": {"code": "rate_limit_exceeded",
                                                                               "message": "x"}}), UpstreamRateLimited)
    assert isinstance(agent_response.failure(p, {"status": "failed", "error": {"code": "invalid_prompt",
                                                                               "message": "x"}}), UpstreamClientError)
    assert isinstance(agent_response.failure(p, {"status": "cancelled"}), UpstreamError)
    with pytest.raises(UpstreamError):  # a response that is still running is no answer
        p.parse_chat(call({"messages": USER}), response(200, {"status": "in_progress", "output": []}))


def test_stream_without_item_events_uses_the_final_response():
    p = provider("perplexity")
    translator = p.stream_translator(call({"messages": USER}, stream=True))
    final = {"status": "completed", "model": "m", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": "All at once."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"a": 1}}],
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}}
    out = frames(translator.feed(sse({"type": "response.completed", "response": final}, done=False)))
    out += frames(translator.finish())
    deltas = [f["choices"][0]["delta"] for f in out]
    assert deltas[0] == {"role": "assistant", "content": ""} and deltas[1] == {"content": "All at once."}
    assert deltas[2]["tool_calls"][0]["id"] == "c1" and deltas[3]["tool_calls"][0]["function"]["arguments"] == '{"a":1}'
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls" and translator.usage.completion_tokens == 2


def test_stream_ignores_unknown_events_and_events_after_the_end():
    translator = provider("perplexity").stream_translator(call({"messages": USER}, stream=True))
    out = translator.feed(sse({"type": "response.reasoning.started", "thought": "hm"},
                              {"type": "response.completed", "response": {"status": "completed", "output": []}},
                              {"type": "response.output_text.delta", "delta": "late"}, done=False))
    assert len(frames(out)) == 2 and translator.finish() == []


def test_invalid_api_option():
    from gateway.config import parse_config
    from gateway.config_reader import ConfigError
    with pytest.raises(ConfigError) as err:
        parse_config({"providers": {"p": {"type": "perplexity", "api": "responses"}}, "models": {}}, env={})
    assert err.value.errors == ["providers.p.api: must be one of agent, chat, got 'responses'"]


def test_sonar_drops_the_cumulative_message():
    p = provider("perplexity", api_base="https://api.perplexity.ai", api="chat")
    assert p.build_chat(call({"messages": USER})).url == "https://api.perplexity.ai/chat/completions"
    translator = p.stream_translator(call({}, stream=True))
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "sonar", "citations": ["u"],
             "choices": [{"index": 0, "delta": {"content": "a"}, "message": {"content": "a"}, "finish_reason": "stop"}]}
    out = frames(translator.feed(sse(chunk, done=False))) + frames(translator.finish())
    assert "message" not in out[0]["choices"][0] and out[0]["citations"] == ["u"]
    with pytest.raises(UnsupportedParameter):
        p.build_chat(call({"messages": USER, "n": 2}))
