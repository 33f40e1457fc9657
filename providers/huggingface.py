"""Hugging Face: the Inference Providers router (default), or a self-hosted TGI server / dedicated
Inference Endpoint given by ``api_base`` (``http://host:8080/v1``; TGI serves ``/v1/chat/completions``).

Chat is the shared OpenAI dialect (``eos_token`` -> ``stop`` via the shared table). TGI errors are
``{"error": "...", "error_type": "validation|generation|overloaded|incomplete_generation"}``, also inside
streams. Embeddings (``embeddings_api``): ``pipeline`` uses the router's feature-extraction pipeline
(``{origin}/hf-inference/models/{model}/pipeline/feature-extraction`` with ``{"inputs": ...}``, answered
with bare float arrays, token counts estimated); ``openai`` posts OpenAI's body to ``{api_base}/embeddings``
(a text-embeddings-inference server); ``auto`` picks ``pipeline`` for the router and ``openai`` otherwise.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from gateway.errors import GatewayError, Overloaded, UnsupportedParameter, UpstreamClientError, UpstreamError
from providers.base import (
    answer_json,
    Call,
    Capabilities,
    OptionSpec,
    ProviderConfig,
    Translated,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)
from providers.openai_dialect import ErrorInfo, OpenAIDialect

ROUTER_HOST = "router.huggingface.co"


class HuggingFaceProvider(OpenAIDialect):
    type_name = "huggingface"
    default_api_base = f"https://{ROUTER_HOST}/v1"
    capabilities = Capabilities(chat=True, embeddings=True)
    context_length_markers = ("must have less than", "maximum context length", "too many tokens")
    options = {
        "embeddings_api": OptionSpec(str, "auto", "how to serve /v1/embeddings: 'pipeline' (the router's "
                                                  "feature-extraction pipeline), 'openai' ({api_base}/embeddings) "
                                                  "or 'auto' (pipeline on the router, openai elsewhere)",
                                     choices=("auto", "pipeline", "openai")),
    }

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        mode = config.option("embeddings_api") or "auto"  # the config loader checked the value
        if mode == "auto":
            mode = "pipeline" if urlsplit(self.api_base).hostname == ROUTER_HOST else "openai"
        self.pipeline = mode == "pipeline"
        self.origin = self.api_base[:-3] if self.api_base.endswith("/v1") else self.api_base

    # -- embeddings -----------------------------------------------------------------------------

    def build_embeddings(self, call: Call) -> UpstreamRequest:
        if not self.pipeline:
            return super().build_embeddings(call)
        body = self.check_params(call, frozenset({"dimensions"}))
        inputs = body.get("input")
        if not (isinstance(inputs, str) or (isinstance(inputs, list) and inputs
                                            and all(isinstance(i, str) for i in inputs))):
            raise UnsupportedParameter("the feature-extraction pipeline takes text input only (a string or a list "
                                       "of strings), not token ids", param="input")
        url = f"{self.origin}/hf-inference/models/{quote(call.model, safe='/')}/pipeline/feature-extraction"
        return UpstreamRequest("POST", url, self.auth_headers(), orjson.dumps({"inputs": inputs}))

    def parse_embeddings(self, call: Call, response: UpstreamResponse) -> Translated:
        if not self.pipeline:
            return super().parse_embeddings(call, response)
        data = answer_json(response.body, self.config.name)
        inputs = call.body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        vectors = _sentence_vectors(data, single=isinstance(inputs, str))
        if vectors is None or len(vectors) != len(texts):
            raise UpstreamError(f"provider '{self.config.name}' answered feature-extraction with an unexpected shape")
        usage = Usage(prompt_tokens=sum(max(1, len(t) // 4) for t in texts), estimated=True)
        return self.embeddings_result(call, vectors, usage, call.model)

    # -- errors ---------------------------------------------------------------------------------

    def map_error_info(self, response: UpstreamResponse, info: ErrorInfo) -> GatewayError:
        kind = info.type or ((info.raw or {}).get("error_type") if info.raw else None)
        message = self.scrub(info.message)
        if kind == "overloaded":
            return Overloaded(message)
        if kind == "validation" and response.status in (400, 422):
            mapped = super().map_error_info(response, info)
            return mapped if mapped.code == "context_length_exceeded" else UpstreamClientError(message, status=400)
        if kind in ("generation", "incomplete_generation"):
            return UpstreamError(message)
        return super().map_error_info(response, info)


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, (int, float)) for x in value)


def _pool(value: Any) -> list[float] | None:
    """A sentence vector, or the mean of token vectors."""
    if _is_vector(value):
        return [float(x) for x in value]
    if isinstance(value, list) and value and all(_is_vector(v) for v in value):
        width = len(value[0])
        return [sum(v[i] for v in value) / len(value) for i in range(width)]
    return None


def _sentence_vectors(data: Any, *, single: bool) -> list[list[float]] | None:
    if not isinstance(data, list) or not data:
        return None
    if single and (_is_vector(data) or len(data) > 1):
        vector = _pool(data)
        return [vector] if vector is not None else None
    vectors = [_pool(item) for item in data]
    return None if any(v is None for v in vectors) else vectors  # type: ignore[return-value]
