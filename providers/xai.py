"""xAI (Grok): the shared OpenAI dialect, with xAI's answer to a bad key.

xAI answers a bad API key with HTTP 400 (``{"code": "...", "error": "Incorrect API key provided: ..."}``);
clients get OpenAI's 401 ``invalid_api_key``. ``reasoning_content`` (some Grok models) is relayed as
sent. xAI has no embeddings API.
"""

from __future__ import annotations

from gateway.errors import GatewayError, InvalidApiKey
from providers.base import Capabilities, UpstreamResponse
from providers.openai_dialect import ErrorInfo, OpenAIDialect

BAD_KEY_MARKERS = ("incorrect api key", "invalid api key", "no api key")


class XAIProvider(OpenAIDialect):
    type_name = "xai"
    default_api_base = "https://api.x.ai/v1"
    capabilities = Capabilities(chat=True, embeddings=False)
    context_length_markers = ("maximum prompt length", "maximum context length")

    def map_error_info(self, response: UpstreamResponse, info: ErrorInfo) -> GatewayError:
        message = self.scrub(info.message)
        if response.status in (400, 401, 403) and any(m in message.lower() for m in BAD_KEY_MARKERS):
            return InvalidApiKey(message)
        return super().map_error_info(response, info)
