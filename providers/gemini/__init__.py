"""Google Gemini (Generative Language API, not Vertex AI).

    chat        POST {api_base}/{api_version}/models/{model}:generateContent
    stream      POST {api_base}/{api_version}/models/{model}:streamGenerateContent?alt=sse
    embeddings  POST {api_base}/{api_version}/models/{model}:batchEmbedContents
    models      GET  {api_base}/{api_version}/models?pageSize=1000

The key goes in ``x-goog-api-key``. The translation lives next door: ``request`` (OpenAI -> Gemini),
``response`` (Gemini -> chat.completion), ``stream`` (SSE -> chunks), ``toolids`` (thought signatures
carried inside tool-call ids), ``errors`` and ``embeddings``. See docs/providers/gemini.md.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import GatewayError
from providers.base import (
    Call,
    Capabilities,
    OptionSpec,
    Provider,
    StreamTranslator,
    Translated,
    UpstreamRequest,
    UpstreamResponse,
)
from providers.gemini import embeddings
from providers.gemini.errors import map_gemini_error
from providers.gemini.request import build_body as chat_body
from providers.gemini.response import parse_completion
from providers.gemini.stream import GeminiStreamTranslator
from providers.openai_compat import normalise_model

__all__ = ["GeminiProvider", "GeminiStreamTranslator"]

# OpenAI fields Gemini cannot honour: 400 unsupported_parameter, or dropped with drop_unsupported_params
UNSUPPORTED = frozenset({"user", "logit_bias", "logprobs", "top_logprobs", "functions", "function_call", "audio",
                         "modalities", "prediction", "web_search_options", "service_tier", "store", "metadata",
                         "parallel_tool_calls"})
# values of those fields that ask for nothing Gemini does not already do
HARMLESS = {"logprobs": False, "parallel_tool_calls": True, "store": False}


class GeminiProvider(Provider):
    type_name = "gemini"
    default_api_base = "https://generativelanguage.googleapis.com"
    capabilities = Capabilities(chat=True, embeddings=True, tools=True, vision=True, json_mode=True)
    unsupported_params = UNSUPPORTED
    options = {
        "api_version": OptionSpec(str, "v1beta", "API version path segment put after api_base"),
        "safety_settings": OptionSpec(list, None, "sent as safetySettings on every chat request "
                                      "([{category, threshold}, ...])", item_type=dict),
        "embedding_task_type": OptionSpec(str, None, "taskType for embeddings, e.g. RETRIEVAL_DOCUMENT"),
    }

    # -- URLs and headers -------------------------------------------------------------------------

    def model_path(self, model: str) -> str:
        """``models/{id}``; a full resource name (``tunedModels/x``, ``models/x``) is kept."""
        return model if "/" in model else f"models/{model}"

    def url(self, model: str, method: str) -> str:
        version = self.config.option("api_version") or "v1beta"
        return f"{self.api_base}/{version}/{self.model_path(model)}:{method}"

    def auth_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key:
            headers["x-goog-api-key"] = self.config.api_key
        return headers

    # -- chat -------------------------------------------------------------------------------------

    def build_chat(self, call: Call) -> UpstreamRequest:
        unsupported = frozenset(k for k in UNSUPPORTED if not (k in HARMLESS and call.body.get(k) == HARMLESS[k]))
        body = chat_body(self.check_params(call, unsupported), call.model,
                                  self.config.option("safety_settings"))
        if call.stream:
            url = self.url(call.model, "streamGenerateContent") + "?alt=sse"
        else:
            url = self.url(call.model, "generateContent")
        return UpstreamRequest("POST", url, self.auth_headers(), orjson.dumps(body), stream=call.stream)

    def parse_chat(self, call: Call, response: UpstreamResponse) -> Translated:
        return parse_completion(call, response.body, self.config.name)

    def stream_translator(self, call: Call) -> StreamTranslator:
        return GeminiStreamTranslator(self, call)

    # -- embeddings -------------------------------------------------------------------------------

    def build_embeddings(self, call: Call) -> UpstreamRequest:
        body = embeddings.build_body(self.check_params(call, frozenset({"user"})), self.model_path(call.model),
                                     self.config.option("embedding_task_type"))
        return UpstreamRequest("POST", self.url(call.model, "batchEmbedContents"), self.auth_headers(),
                               orjson.dumps(body))

    def parse_embeddings(self, call: Call, response: UpstreamResponse) -> Translated:
        return embeddings.parse(call, response.body, self.config.name)

    # -- models -----------------------------------------------------------------------------------

    def build_list_models(self) -> UpstreamRequest:
        version = self.config.option("api_version") or "v1beta"
        headers = {k: v for k, v in self.auth_headers().items() if k != "content-type"}
        return UpstreamRequest("GET", f"{self.api_base}/{version}/models?pageSize=1000", headers)

    def parse_list_models(self, response: UpstreamResponse) -> list[dict[str, Any]]:
        data = response.json()
        items = data.get("models") if isinstance(data, dict) else None
        return [normalise_model({**item, "id": str(item.get("name", "")).removeprefix("models/")}, "google")
                for item in items or [] if isinstance(item, dict)]

    # -- errors -----------------------------------------------------------------------------------

    def map_error(self, response: UpstreamResponse) -> GatewayError:
        return map_gemini_error(response, self.scrub)
