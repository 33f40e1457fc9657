"""Together AI: the shared OpenAI dialect; ``finish_reason: "eos"`` becomes ``stop`` (shared table).

Its model list is a bare JSON array whose entries name their ``organization``, used as ``owned_by``.
Embeddings are OpenAI-shaped; the gateway asks for floats and encodes base64 itself.
"""

from __future__ import annotations

from typing import Any

from providers.base import Capabilities, UpstreamResponse
from providers.openai_compat import normalise_model
from providers.openai_dialect import OpenAIDialect


class TogetherProvider(OpenAIDialect):
    type_name = "together"
    default_api_base = "https://api.together.xyz/v1"
    capabilities = Capabilities(chat=True, embeddings=True)
    context_length_markers = ("maximum context length", "input validation error: `inputs` tokens")

    def parse_list_models(self, response: UpstreamResponse) -> list[dict[str, Any]]:
        data = response.json()
        items = data.get("data", []) if isinstance(data, dict) else data
        return [normalise_model({**item, "owned_by": item.get("owned_by") or item.get("organization")}, "together")
                for item in items or [] if isinstance(item, dict)]
