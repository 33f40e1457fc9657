"""Cohere v2: ``POST /v2/chat`` (JSON or named-event SSE), ``POST /v2/embed`` and ``GET /v1/models``.

The translation lives in ``request`` (OpenAI -> Cohere bodies), ``response`` (Cohere -> OpenAI),
``stream`` (the SSE translator) and ``errors`` (the error mapping); this module wires them to the
provider interface. See docs/providers/cohere.md.
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
from providers.cohere import errors, request, response
from providers.cohere.stream import CohereStreamTranslator
from providers.vendor_answers import load_object


class CohereProvider(Provider):
    type_name = "cohere"
    default_api_base = "https://api.cohere.com"
    capabilities = Capabilities(chat=True, embeddings=True, tools=True, vision=True, json_mode=True)
    unsupported_params = request.UNSUPPORTED
    options = {
        "embed_input_type": OptionSpec(str, "search_document",
                                       "input_type sent to /v2/embed when the client sends none "
                                       "(search_document, search_query, classification, clustering)"),
        "embed_truncate": OptionSpec(str, None, "truncate sent to /v2/embed: NONE, START or END"),
        "client_name": OptionSpec(str, None, "sent as X-Client-Name"),
        "models_page_size": OptionSpec(int, 1000, "page_size for GET /v1/models (one page is read)"),
    }

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.config.option("client_name"):
            headers["x-client-name"] = str(self.config.option("client_name"))
        return headers

    # -- chat -----------------------------------------------------------------------------------

    def build_chat(self, call: Call) -> UpstreamRequest:
        body = self.check_params(call, request.unsupported_fields(call.body))
        payload = request.chat_body(body, call.model, call.stream)
        headers = self.auth_headers()
        if call.stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", f"{self.api_base}/v2/chat", headers, orjson.dumps(payload), stream=call.stream)

    def parse_chat(self, call: Call, upstream: UpstreamResponse) -> Translated:
        return response.chat_completion(call, load_object(upstream.body, self.config.name))

    def stream_translator(self, call: Call) -> StreamTranslator:
        return CohereStreamTranslator(call, self.config.name)

    # -- embeddings -----------------------------------------------------------------------------

    def build_embeddings(self, call: Call) -> UpstreamRequest:
        body = self.check_params(call, frozenset({"user"}))
        payload = request.embed_body(body, call.model, self.config.option("embed_input_type") or "search_document",
                                     self.config.option("embed_truncate"))
        return UpstreamRequest("POST", f"{self.api_base}/v2/embed", self.auth_headers(), orjson.dumps(payload))

    def parse_embeddings(self, call: Call, upstream: UpstreamResponse) -> Translated:
        return response.embeddings(call, load_object(upstream.body, self.config.name))

    # -- models ---------------------------------------------------------------------------------

    def build_list_models(self) -> UpstreamRequest:
        size = int(self.config.option("models_page_size") or 1000)
        return UpstreamRequest("GET", f"{self.api_base}/v1/models?page_size={size}", self.auth_headers())

    def parse_list_models(self, upstream: UpstreamResponse) -> list[dict[str, Any]]:
        return response.models(upstream.json())

    # -- errors ---------------------------------------------------------------------------------

    def map_error(self, upstream: UpstreamResponse) -> GatewayError:
        return errors.map_error(upstream, self.scrub)


__all__ = ["CohereProvider"]
