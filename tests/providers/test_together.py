"""Together: eos -> stop, bare-array model list."""

from __future__ import annotations

import orjson
import pytest

from tests.providers.dialect_helpers import call, chunk, frames, provider, response, sse

pytestmark = pytest.mark.timeout(10)


def test_models_bare_array():
    models = provider("together").parse_list_models(response(200, [
        {"id": "meta-llama/x", "object": "model", "created": 5, "type": "chat", "organization": "Meta"},
        {"id": "bge", "type": "embedding"}]))
    assert [(m["id"], m["owned_by"], m["created"], m["object"]) for m in models] == [
        ("meta-llama/x", "Meta", 5, "model"), ("bge", "together", 0, "model")]


def test_eos_is_stop():
    p = provider("together")
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}, "logprobs": None,
         "finish_reason": "eos"}]}
    assert orjson.loads(p.parse_chat(call({}), response(200, body)).body)["choices"][0]["finish_reason"] == "stop"
    translator = p.stream_translator(call({}, stream=True))
    out = frames(translator.feed(sse(chunk({}, "eos")))) + frames(translator.finish())
    assert out[0]["choices"][0]["finish_reason"] == "stop"


def test_default_base():
    assert provider("together", api_base="https://api.together.xyz/v1").build_list_models().url == \
        "https://api.together.xyz/v1/models"
