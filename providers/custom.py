"""Any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama, LocalAI, OpenRouter, ...),
configured in YAML only.

``api_base`` is required (with the ``/v1`` the server expects). Options: ``auth_header`` (default
``Authorization``) and ``auth_scheme`` (default ``Bearer``; ``""`` sends the raw key) say how the key is
sent; ``rename_params: {from: to}`` and ``drop_params: [...]`` edit every request body (chat and
embeddings) after the gateway's own edits, so ``drop_params: [stream_options]`` helps servers that
reject it. Answers are read liberally by the shared dialect code: missing ids and timestamps filled in,
non-standard finish reasons mapped, arguments objects dumped, tool-call deltas without ``index`` keyed by
id, and a stream that ends after its finish_reason chunk without ``[DONE]`` accepted.
"""

from __future__ import annotations

from providers.base import Capabilities, OptionSpec, ProviderConfig
from providers.openai_dialect import OpenAIDialect


class CustomProvider(OpenAIDialect):
    type_name = "custom"
    default_api_base = ""  # required: there is no default server
    capabilities = Capabilities(chat=True, embeddings=True)
    finish_ends_stream = True
    options = {
        "auth_header": OptionSpec(str, "Authorization", "the header that carries api_key"),
        "auth_scheme": OptionSpec(str, "Bearer", "the word before the key in auth_header; '' sends the raw key"),
        "rename_params": OptionSpec(dict, {}, "request fields to rename, {from: to}", item_type=str),
        "drop_params": OptionSpec(list, [], "request fields to remove", item_type=str),
    }

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.renames.update(config.option("rename_params") or {})
        self.drops = self.drops | frozenset(config.option("drop_params") or ())
        header = config.option("auth_header")
        self.auth_header = (header if header is not None else "Authorization").lower()
        scheme = config.option("auth_scheme")
        self.auth_scheme = "Bearer" if scheme is None else scheme

    def auth_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key:
            key = self.config.api_key
            headers[self.auth_header] = f"{self.auth_scheme} {key}" if self.auth_scheme else key
        return headers
