"""The Perplexity plugin: routes each call to the Agent API translator or to Sonar chat completions.

Sonar (``api: chat``) is OpenAI-like, with these differences handled here: tools, ``seed`` and ``n`` > 1
are not supported (400 ``unsupported_parameter``, or dropped with ``drop_unsupported_params``);
``stream_options`` is not sent (Sonar reports usage on every chunk; the client still gets OpenAI's
usage-only last chunk when it asked); streams may end after the chunk with a ``finish_reason``, without
``[DONE]``; each chunk's cumulative ``message`` copy is removed, while ``citations`` and ``search_results``
reach the client as extra fields on the completion and on the chunks.
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.base import (
    Call,
    Capabilities,
    OptionSpec,
    ProviderConfig,
    StreamTranslator,
    Translated,
    UpstreamRequest,
    UpstreamResponse,
)
from providers.openai_dialect import OpenAIDialect
from providers.perplexity import agent_request, agent_response
from providers.perplexity.agent_stream import AgentStreamTranslator

SONAR_UNSUPPORTED = frozenset({"tools", "tool_choice", "parallel_tool_calls", "seed", "logit_bias", "logprobs",
                               "top_logprobs", "audio", "modalities"})


class PerplexityProvider(OpenAIDialect):
    type_name = "perplexity"
    default_api_base = "https://api.perplexity.ai"
    capabilities = Capabilities(chat=True, embeddings=False, tools=True, vision=True)
    options = {
        "api": OptionSpec(str, "agent", "'agent' (the Agent API, POST /v1/agent) or 'chat' (legacy Sonar "
                                        "POST /chat/completions)", choices=("agent", "chat")),
    }
    supports_stream_usage = False  # Sonar: usage comes on every chunk
    finish_ends_stream = True  # Sonar: the chunk with a finish_reason may be the last
    renamed_params = {"max_completion_tokens": "max_tokens"}
    dropped_params = frozenset({"stream_options", "user", "store", "n"})

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.agent = (config.option("api") or "agent") == "agent"  # the config loader checked the value

    # -- chat -----------------------------------------------------------------------------------

    def chat_url(self, call: Call) -> str:
        return f"{self.api_base}/v1/agent" if self.agent else f"{self.api_base}/chat/completions"

    def build_chat(self, call: Call) -> UpstreamRequest:
        if not self.agent:
            n = call.body.get("n")
            body = self.check_params(call, SONAR_UNSUPPORTED | ({"n"} if n not in (None, 1) else set()))
            out = self.transform_body(call, body)
            return UpstreamRequest("POST", self.chat_url(call), self.auth_headers(), orjson.dumps(out),
                                   stream=call.stream)
        body = self.check_params(call, agent_request.unsupported(call.body))
        out = agent_request.build(call, body)
        return UpstreamRequest("POST", self.chat_url(call), self.auth_headers(), orjson.dumps(out), stream=call.stream)

    def parse_chat(self, call: Call, response: UpstreamResponse) -> Translated:
        if not self.agent:
            return super().parse_chat(call, response)
        return agent_response.translate(self, call, response)

    def stream_translator(self, call: Call) -> StreamTranslator:
        if not self.agent:
            return super().stream_translator(call)
        return AgentStreamTranslator(self, call)

    def transform_chunk(self, call: Call, chunk: dict[str, Any]) -> bool:
        changed = False
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and "message" in choice:  # Sonar's cumulative copy of the answer
                del choice["message"]
                changed = True
        return super().transform_chunk(call, chunk) or changed

    # -- models ---------------------------------------------------------------------------------

    def build_list_models(self) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{self.api_base}/v1/models", self.auth_headers())
