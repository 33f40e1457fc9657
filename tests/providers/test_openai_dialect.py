"""The code the OpenAI-dialect vendors share (providers/openai_dialect.py)."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from gateway.errors import ContextLengthExceeded, InvalidApiKey, UpstreamClientError, UpstreamError, UpstreamRateLimited
from providers.openai_dialect import b64_floats, error_info
from tests.providers.dialect_helpers import call, chunk, frames, provider, response, sse

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(("body", "expected"), [
    ({"error": {"message": "bad", "type": "invalid_request_error", "code": "x_y", "param": "model"}},
     ("bad", "invalid_request_error", "x_y", "model")),
    ({"object": "error", "message": "flat", "type": "invalid_model", "param": None, "code": "1500"},
     ("flat", "invalid_model", None, None)),  # numeric codes are not kept
    ({"code": "Client specified an invalid argument", "error": "Incorrect API key"},
     ("Incorrect API key", None, None, None)),
    ({"error": "overloaded", "error_type": "overloaded"}, ("overloaded", "overloaded", None, None)),
    ({"detail": [{"loc": ["body", "messages", 0], "msg": "Field required"}]},
     ("messages.0: Field required", None, None, "messages")),
    ({"detail": "Not Found"}, ("Not Found", None, None, None)),
    ({"object": "error", "message": {"detail": [{"loc": ["body", "seed"], "msg": "extra"}]}},
     ("seed: extra", None, None, "seed")),
])
def test_error_info_reads_every_shape(body, expected):
    info = error_info(response(400, body))
    assert (info.message, info.type, info.code, info.param) == expected


def test_error_info_plain_text():
    assert error_info(response(502, "<html>bad gateway</html>")).message == "<html>bad gateway</html>"
    assert error_info(response(502, "")).message == "upstream answered HTTP 502"


def test_map_error_table():
    p = provider("custom")
    assert isinstance(p.map_error(response(401, {"message": "no"})), InvalidApiKey)
    limited = p.map_error(response(429, {"error": "slow"}, {"retry-after": "3"}))
    assert isinstance(limited, UpstreamRateLimited) and limited.retry_after == 3
    unprocessable = p.map_error(response(422, {"detail": [{"loc": ["body", "x"], "msg": "bad"}]}))
    assert isinstance(unprocessable, UpstreamClientError) and unprocessable.status == 400
    assert isinstance(p.map_error(response(400, {"error": {"message": "maximum context length is 8k"}})),
                      ContextLengthExceeded)
    assert isinstance(p.map_error(response(500, "boom")), UpstreamError)
    assert "sk-abcdefghijkl" not in p.map_error(response(400, {"message": "key sk-abcdefghijkl bad"})).message


def test_response_repair_fills_what_openai_requires():
    p = provider("custom")
    data = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                                     "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": {"x": 1}}}]},
                         "finish_reason": "eos"}], "system_fingerprint": None}
    assert p.transform_response(call({}), data)
    assert data["id"] == "chatcmpl-req1" and data["object"] == "chat.completion" and data["created"] == 1700000000
    assert "system_fingerprint" not in data
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None and choice["index"] == 0
    assert choice["message"] == {"content": "ab", "role": "assistant", "refusal": None, "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]}


def test_response_repair_leaves_good_answers_alone():
    p = provider("together")
    good = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}, "logprobs": None,
         "finish_reason": "stop"}]}
    assert p.transform_response(call({}), good) is False


@pytest.mark.parametrize(("vendor", "expected"), [("eos", "stop"), ("eos_token", "stop"), ("model_length", "length"),
                                                  ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                                  ("something_new", "stop"), ("content_filter", "content_filter")])
def test_finish_reason_table(vendor, expected):
    choice = {"finish_reason": vendor}
    provider("custom").repair_finish(choice)
    assert choice["finish_reason"] == expected


def test_finish_reason_error_raises():
    with pytest.raises(UpstreamError):
        provider("mistral").repair_finish({"finish_reason": "error"})


def test_stream_moves_usage_to_its_own_chunk():
    p = provider("mistral")
    translator = p.stream_translator(call({}, stream=True, include_usage=True))
    usage = {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    out = frames(translator.feed(sse(chunk({"content": "hi"}), {**chunk({}, "stop"), "usage": usage})))
    out += frames(translator.finish())
    assert out[1]["usage"] is None  # taken off Mistral's last choice chunk
    assert out[-1]["choices"] == [] and out[-1]["usage"]["total_tokens"] == 3 and out[-1]["id"] == "c1"
    assert translator.usage.prompt_tokens == 2


def test_stream_without_usage_request_hides_usage():
    translator = provider("xai").stream_translator(call({}, stream=True))
    usage = {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    out = frames(translator.feed(sse(chunk({"content": "hi"}, "stop"), {**chunk({}), "choices": [], "usage": usage})))
    out += frames(translator.finish())
    assert len(out) == 1 and "usage" not in out[0] and translator.usage.total_tokens == 3


def test_stream_tool_deltas_without_index_are_keyed_by_id():
    translator = provider("custom").stream_translator(call({}, stream=True))
    out = frames(translator.feed(sse(
        {"choices": [{"delta": {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": ""}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": {"k": 1}}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}, done=False)))
    out += frames(translator.finish())  # no [DONE]: the finish_reason chunk ended it
    indexes = [tc["index"] for f in out for tc in f["choices"][0]["delta"].get("tool_calls", [])]
    assert indexes == [0, 0, 1]
    assert out[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"k":1}'
    assert all(f["object"] == "chat.completion.chunk" and f["id"] == "chatcmpl-req1" for f in out)


def test_stream_truncated_raises():
    translator = provider("together").stream_translator(call({}, stream=True))
    translator.feed(sse(chunk({"content": "hi"}, "stop"), done=False))
    with pytest.raises(UpstreamError):
        translator.finish()  # Together always sends [DONE]: a finish_reason is not the end


def test_stream_error_after_frames_is_raised_on_the_next_call():
    translator = provider("huggingface").stream_translator(call({}, stream=True))
    out = translator.feed(sse(chunk({"content": "hi"}), {"error": "overloaded", "error_type": "overloaded"}))
    assert len(out) == 1
    with pytest.raises(UpstreamError):
        translator.finish()


def test_embeddings_base64_encoded_by_the_gateway():
    p = provider("together")
    c = call({"model": "e", "input": "x", "encoding_format": "base64"}, endpoint="embeddings")
    assert "encoding_format" not in orjson.loads(p.build_embeddings(c).body)
    out = orjson.loads(p.parse_embeddings(c, response(200, {"data": [{"embedding": [1.0, -2.5]}],
                                                           "usage": {"prompt_tokens": 4}})).body)
    assert struct.unpack("<2f", base64.b64decode(out["data"][0]["embedding"])) == (1.0, -2.5)
    assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4} and out["model"] == "m"
    assert b64_floats([1.0]) == base64.b64encode(struct.pack("<f", 1.0)).decode()
