"""Anthropic streams: named SSE events -> chat.completion.chunk frames, truncation, error events.

Whole recorded cases live in tests/golden/anthropic/*.json; these tests pin the rules one at a time.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import GatewayError, Overloaded, UpstreamClientError, UpstreamError, UpstreamRateLimited
from gateway.sse import encode_event
from tests.fakes.anthropic import FakeState, Reply, _message, stream_events, text, thinking, tool_use
from tests.providers.anthropic_helpers import call, provider
from tests.schemas import validate

pytestmark = pytest.mark.timeout(30)


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
