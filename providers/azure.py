"""Azure OpenAI: OpenAI's wire format behind Azure's URLs, auth and content filters.

``api_base`` is the resource endpoint (``https://{resource}.openai.azure.com``). The classic API puts
the deployment in the path and needs ``?api-version=``; ``api_version: v1`` selects the v1 API
(``/openai/v1/...``, the deployment name as ``model``, no version). The key goes in ``api-key``; with
no key, a Microsoft Entra token (``azure_ad_token``, or env ``AZURE_OPENAI_AD_TOKEN``) is sent as a
bearer token.

Stream quirks handled here: a first chunk with empty ``choices`` that only carries
``prompt_filter_results`` (held back and attached to the next chunk), and chunks whose choices have no
``delta`` (asynchronous content filtering; the shared repair adds an empty delta).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from gateway.errors import GatewayError, PolicyViolation
from providers.base import Call, Capabilities, OptionSpec, ProviderConfig, UpstreamRequest, UpstreamResponse
from providers.openai_compat import normalise_model
from providers.openai_dialect import ErrorInfo, OpenAIDialect

DEFAULT_API_VERSION = "2024-10-21"


class AzureProvider(OpenAIDialect):
    type_name = "azure"
    default_api_base = ""  # the resource endpoint is required
    capabilities = Capabilities(chat=True, embeddings=True)
    native_base64 = True
    options = {
        "api_version": OptionSpec(str, DEFAULT_API_VERSION,
                                  "the api-version query parameter of the classic API, or 'v1' for the v1 API"),
        "azure_ad_token": OptionSpec(str, None, "a Microsoft Entra ID bearer token used when api_key is not set "
                                                "(default: env AZURE_OPENAI_AD_TOKEN)"),
    }

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        endpoint = self.api_base
        for suffix in ("/openai/v1", "/openai"):  # accept the SDK-style base too
            if endpoint.endswith(suffix):
                endpoint = endpoint[: -len(suffix)]
                break
        self.endpoint = endpoint
        self.api_version = str(config.option("api_version") or DEFAULT_API_VERSION)
        self.v1 = self.api_version == "v1"
        self.ad_token = config.option("azure_ad_token") or os.environ.get("AZURE_OPENAI_AD_TOKEN")

    # -- URLs and auth --------------------------------------------------------------------------

    def _url(self, call: Call, path: str) -> str:
        if self.v1:
            return f"{self.endpoint}/openai/v1/{path}"
        deployment = quote(call.model, safe="")
        return f"{self.endpoint}/openai/deployments/{deployment}/{path}?api-version={quote(self.api_version)}"

    def chat_url(self, call: Call) -> str:
        return self._url(call, "chat/completions")

    def embeddings_url(self, call: Call) -> str:
        return self._url(call, "embeddings")

    def build_list_models(self) -> UpstreamRequest:
        if self.v1:
            return UpstreamRequest("GET", f"{self.endpoint}/openai/v1/models", self.auth_headers())
        url = f"{self.endpoint}/openai/models?api-version={quote(self.api_version)}"
        return UpstreamRequest("GET", url, self.auth_headers())

    def auth_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key:
            headers["api-key"] = self.config.api_key
        elif self.ad_token:
            headers["authorization"] = f"Bearer {self.ad_token}"
        return headers

    def scrub(self, message: str) -> str:
        message = super().scrub(message)
        return message.replace(self.ad_token, "***") if self.ad_token and len(self.ad_token) >= 4 else message

    # -- translation hooks ----------------------------------------------------------------------

    def transform_chunk(self, call: Call, chunk: dict[str, Any]) -> bool:
        if not chunk.get("choices") and not chunk.get("usage"):
            if "prompt_filter_results" in chunk:  # kept for the first chunk the client gets
                call.scratch["azure_prompt_filter"] = chunk["prompt_filter_results"]
            return False
        changed = super().transform_chunk(call, chunk)
        if chunk.get("choices") and "azure_prompt_filter" in call.scratch:
            chunk.setdefault("prompt_filter_results", call.scratch.pop("azure_prompt_filter"))
            changed = True
        return changed

    def parse_list_models(self, response: UpstreamResponse) -> list[dict[str, Any]]:
        data = response.json()
        items = data.get("data", []) if isinstance(data, dict) else data
        models = []
        for item in items or []:
            if isinstance(item, dict):
                model = normalise_model(item, "azure")
                model["created"] = int(item.get("created") or item.get("created_at") or 0)
                models.append(model)
        return models

    # -- errors ---------------------------------------------------------------------------------

    def map_error_info(self, response: UpstreamResponse, info: ErrorInfo) -> GatewayError:
        error = (info.raw or {}).get("error")
        if isinstance(error, dict) and error.get("code") == "content_filter":
            return PolicyViolation(self.scrub(info.message) + _filtered(error), param=info.param or "prompt",
                                   code="content_filter")
        return super().map_error_info(response, info)


def _filtered(error: dict[str, Any]) -> str:
    """The categories Azure's content filter flagged, e.g. `` (filtered: hate=high)``."""
    inner = error.get("innererror")
    result = inner.get("content_filter_result") if isinstance(inner, dict) else None
    if not isinstance(result, dict):
        return ""
    flagged = [f"{name}={value.get('severity', 'flagged')}" for name, value in result.items()
               if isinstance(value, dict) and value.get("filtered")]
    return f" (filtered: {', '.join(flagged)})" if flagged else ""
