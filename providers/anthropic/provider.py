"""Anthropic Messages API (``POST {api_base}/v1/messages``), translated to and from OpenAI chat.

Auth is ``x-api-key`` plus the required ``anthropic-version`` header (option ``anthropic_version``)
and, optionally, ``anthropic-beta`` (option ``anthropic_beta``). Models are listed with
``GET {api_base}/v1/models``. There is no embeddings endpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from gateway.errors import GatewayError, UpstreamError
from providers.anthropic import errors, request, response
from providers.anthropic.stream import AnthropicStreamTranslator
from providers.base import (
    Call,
    Capabilities,
    OptionSpec,
    Provider,
    ProviderConfig,
    StreamTranslator,
    Translated,
    UpstreamRequest,
    UpstreamResponse,
)
from providers.openai_compat import normalise_model
from providers.vendor_answers import epoch_seconds


class AnthropicProvider(Provider):
    type_name = "anthropic"
    default_api_base = "https://api.anthropic.com"
    capabilities = Capabilities(chat=True, embeddings=False, tools=True, vision=True, json_mode=True,
                                streaming_usage=True, list_models=True)
    options = {
        "anthropic_version": OptionSpec(str, "2023-06-01", "sent as the anthropic-version header"),
        "anthropic_beta": OptionSpec((str, list), None, "beta feature name(s), sent as anthropic-beta",
                                     item_type=str),
        "default_max_tokens": OptionSpec(int, 4096, "max_tokens when the client sends neither max_tokens "
                                         "nor max_completion_tokens (Anthropic requires one)"),
        "allow_temperature_with_top_p": OptionSpec(bool, False, "send top_p together with temperature "
                                                   "(newer models reject the pair; by default only "
                                                   "temperature is sent)"),
        "emulate_json_object": OptionSpec(bool, True, "response_format json_object: add a system instruction "
                                          "asking for JSON (false: answer 400 unsupported_parameter)"),
    }
    unsupported_params = request.UNSUPPORTED

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        if self.api_base.endswith("/v1"):  # accept a base written the OpenAI way
            self.api_base = self.api_base[:-3]
        self.request_options = request.RequestOptions(
            default_max_tokens=int(self._option("default_max_tokens")),
            allow_temperature_with_top_p=bool(self._option("allow_temperature_with_top_p")),
            emulate_json_object=bool(self._option("emulate_json_object")),
        )

    def _option(self, name: str) -> Any:
        value = self.config.option(name)
        return self.options[name].default if value is None else value

    # -- chat -----------------------------------------------------------------------------------

    def build_chat(self, call: Call) -> UpstreamRequest:
        body = self.check_params(dataclasses.replace(call, body=request.meaningful_fields(call.body)))
        anthropic_body = request.build_body(body, call.model, call.stream, self.request_options)
        return UpstreamRequest("POST", f"{self.api_base}/v1/messages", self.auth_headers(),
                               orjson.dumps(anthropic_body), stream=call.stream)

    def parse_chat(self, call: Call, upstream: UpstreamResponse) -> Translated:
        return response.parse_message(call, upstream.body, self.config.name)

    def stream_translator(self, call: Call) -> StreamTranslator:
        return AnthropicStreamTranslator(self, call)

    # -- models ---------------------------------------------------------------------------------

    def build_list_models(self) -> UpstreamRequest:
        headers = {k: v for k, v in self.auth_headers().items() if k != "content-type"}
        return UpstreamRequest("GET", f"{self.api_base}/v1/models?limit=1000", headers)

    def parse_list_models(self, upstream: UpstreamResponse) -> list[dict[str, Any]]:
        data = upstream.json()
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamError(f"provider '{self.config.name}' answered the model list without 'data'")
        return [normalise_model({**item, "created": epoch_seconds(item.get("created_at"))}, "anthropic")
                for item in data["data"] if isinstance(item, dict) and item.get("id")]

    # -- errors and headers ---------------------------------------------------------------------

    def map_error(self, upstream: UpstreamResponse) -> GatewayError:
        return errors.map_error(upstream.status, upstream.headers, upstream.body, self.config.name, self.scrub)

    def auth_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json",
                   "anthropic-version": str(self._option("anthropic_version"))}
        beta = self.config.option("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        headers.update(self.config.headers)
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

