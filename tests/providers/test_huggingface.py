"""Hugging Face: router vs TGI, the feature-extraction pipeline, TGI's error shape."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import Overloaded, UnsupportedParameter, UpstreamClientError, UpstreamError
from providers.huggingface import _sentence_vectors
from tests.providers.dialect_helpers import call, provider, response

pytestmark = pytest.mark.timeout(10)

ROUTER = "https://router.huggingface.co/v1"


def test_embeddings_mode_auto():
    c = call({"input": "a"}, model="BAAI/bge", endpoint="embeddings")
    assert provider("huggingface", api_base=ROUTER).build_embeddings(c).url == \
        "https://router.huggingface.co/hf-inference/models/BAAI/bge/pipeline/feature-extraction"
    assert provider("huggingface", api_base="http://tei:8080/v1").build_embeddings(c).url == "http://tei:8080/v1/embeddings"
    assert provider("huggingface", api_base="http://h:1/v1", embeddings_api="pipeline").build_embeddings(c).url == \
        "http://h:1/hf-inference/models/BAAI/bge/pipeline/feature-extraction"
    from gateway.config import parse_config
    from gateway.config_reader import ConfigError
    with pytest.raises(ConfigError) as err:
        parse_config({"providers": {"h": {"type": "huggingface", "embeddings_api": "grpc"}}, "models": {}}, env={})
    assert err.value.errors[0].startswith("providers.h.embeddings_api: must be one of auto, pipeline, openai")


def test_pipeline_refuses_what_it_cannot_do():
    p = provider("huggingface", api_base=ROUTER)
    with pytest.raises(UnsupportedParameter):
        p.build_embeddings(call({"input": [1, 2]}, endpoint="embeddings"))
    with pytest.raises(UnsupportedParameter):
        p.build_embeddings(call({"input": "a", "dimensions": 8}, endpoint="embeddings"))


@pytest.mark.parametrize(("data", "single", "expected"), [
    ([0.5, 1.0], True, [[0.5, 1.0]]),
    ([[0.5, 1.0]], True, [[0.5, 1.0]]),
    ([[1.0, 2.0], [3.0, 4.0]], True, [[2.0, 3.0]]),  # token vectors of one input: mean-pooled
    ([[1.0], [2.0]], False, [[1.0], [2.0]]),
    ([[[1.0, 3.0], [3.0, 5.0]]], False, [[2.0, 4.0]]),
    ({"error": "x"}, False, None),
])
def test_sentence_vectors(data, single, expected):
    assert _sentence_vectors(data, single=single) == expected


def test_pipeline_answer_becomes_openai_list():
    p = provider("huggingface", api_base=ROUTER)
    c = call({"input": ["hello world"], "encoding_format": "float"}, model="mini", endpoint="embeddings")
    translated = p.parse_embeddings(c, response(200, [[0.25, 0.5]]))
    body = orjson.loads(translated.body)
    assert body["data"] == [{"object": "embedding", "index": 0, "embedding": [0.25, 0.5]}]
    assert translated.usage.estimated and body["usage"]["prompt_tokens"] == 2
    with pytest.raises(UpstreamError):
        p.parse_embeddings(c, response(200, [[0.1], [0.2]]))  # two vectors for one input


def test_tgi_errors():
    p = provider("huggingface", api_base="http://tgi:8080/v1")
    assert isinstance(p.map_error(response(429, {"error": "busy", "error_type": "overloaded"})), Overloaded)
    validation = p.map_error(response(422, {"error": "Input validation error", "error_type": "validation"}))
    assert isinstance(validation, UpstreamClientError) and validation.status == 400
    assert isinstance(p.map_error(response(424, {"error": "x", "error_type": "generation"})), UpstreamError)
    context = p.map_error(response(422, {"error": "Input validation error: `inputs` must have less than 4096 tokens",
                                         "error_type": "validation"}))
    assert context.code == "context_length_exceeded"
