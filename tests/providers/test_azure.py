"""Azure OpenAI translation: URLs, auth, stream filter chunks, content-filter errors, model lists."""

from __future__ import annotations

import pytest

from gateway.errors import ModelNotFound, PolicyViolation, UpstreamRateLimited
from tests.providers.dialect_helpers import call, chunk, frames, provider, response, sse

pytestmark = pytest.mark.timeout(10)

BASE = "https://res.openai.azure.com"


@pytest.mark.parametrize("api_base", [BASE, BASE + "/", BASE + "/openai", BASE + "/openai/v1"])
def test_classic_urls(api_base):
    p = provider("azure", api_base=api_base, api_version="2025-04-01-preview")
    c = call({"model": "x", "messages": []}, model="my deployment")
    assert p.build_chat(c).url == f"{BASE}/openai/deployments/my%20deployment/chat/completions" \
                                  "?api-version=2025-04-01-preview"
    assert p.build_embeddings(c).url.startswith(f"{BASE}/openai/deployments/my%20deployment/embeddings?")
    assert p.build_list_models().url == f"{BASE}/openai/models?api-version=2025-04-01-preview"


def test_v1_urls():
    p = provider("azure", api_base=BASE, api_version="v1")
    c = call({"model": "x", "messages": []}, model="dep")
    assert p.build_chat(c).url == f"{BASE}/openai/v1/chat/completions"
    assert p.build_embeddings(c).url == f"{BASE}/openai/v1/embeddings"
    assert p.build_list_models().url == f"{BASE}/openai/v1/models"


def test_default_api_version():
    assert "api-version=2024-10-21" in provider("azure", api_base=BASE, api_version=None).build_chat(
        call({"messages": []})).url


def test_auth_key_then_token_then_env(monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
    assert provider("azure", api_base=BASE).auth_headers()["api-key"] == "test-key"
    token = provider("azure", api_base=BASE, api_key=None, azure_ad_token="tok").auth_headers()
    assert token["authorization"] == "Bearer tok" and "api-key" not in token
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "env-tok")
    assert provider("azure", api_base=BASE, api_key=None).auth_headers()["authorization"] == "Bearer env-tok"
    assert provider("azure", api_base=BASE, api_key=None, azure_ad_token="entra.tok").scrub("x entra.tok!") == "x ***!"


def test_stream_prompt_filter_chunk_and_missing_delta():
    translator = provider("azure", api_base=BASE).stream_translator(call({}, stream=True))
    filter_only = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
                   "prompt_filter_results": [{"prompt_index": 0}]}
    no_delta = {**chunk({}), "choices": [{"index": 0, "finish_reason": None, "content_filter_results": {}}]}
    out = frames(translator.feed(sse(filter_only, chunk({"role": "assistant", "content": ""}), no_delta,
                                     chunk({}, "stop"))))
    out += frames(translator.finish())
    assert len(out) == 3 and out[0]["prompt_filter_results"] == [{"prompt_index": 0}]
    assert out[1]["choices"][0]["delta"] == {} and translator.model == "up"


def test_content_filter_error():
    body = {"error": {"code": "content_filter", "message": "filtered", "param": "prompt", "status": 400,
                      "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                          "hate": {"filtered": True, "severity": "high"}, "sexual": {"filtered": False}}}}}
    error = provider("azure", api_base=BASE).map_error(response(400, body))
    assert isinstance(error, PolicyViolation) and error.code == "content_filter" and error.param == "prompt"
    assert error.message == "filtered (filtered: hate=high)" and error.status == 400


def test_other_errors():
    p = provider("azure", api_base=BASE)
    limited = p.map_error(response(429, {"error": {"code": "429", "message": "retry"}}, {"retry-after": "4"}))
    assert isinstance(limited, UpstreamRateLimited) and limited.code == "rate_limit_exceeded"
    assert limited.retry_after == 4
    assert isinstance(p.map_error(response(404, {"error": {"code": "DeploymentNotFound", "message": "x"}})),
                      ModelNotFound)


def test_list_models_reads_created_at():
    models = provider("azure", api_base=BASE).parse_list_models(response(200, {"data": [
        {"id": "gpt-4o", "created_at": 1715558400, "status": "succeeded", "object": "model"}]}))
    assert models == [{"id": "gpt-4o", "created_at": 1715558400, "status": "succeeded", "object": "model",
                       "created": 1715558400, "owned_by": "azure"}]
