"""Mistral (La Plateforme): Chat Completions with Mistral's own names and rules.

Request edits: ``seed`` -> ``random_seed``, ``max_completion_tokens`` -> ``max_tokens``,
``tool_choice: "required"`` -> ``"any"``, the ``safe_prompt`` option, and ``user``/``stream_options``
removed (Mistral rejects them; the last stream chunk carries usage anyway). Tool-call ids must be
exactly nine letters or digits: any other id the client sends is replaced by a deterministic
nine-character hash of it, in ``assistant.tool_calls`` and ``tool`` messages alike, and mapped back
wherever it appears in the answer; ids Mistral generated already fit and pass unchanged.

Answers: ``model_length`` -> ``length``, ``error`` -> an error, arguments sent as objects and content
sent as chunk lists are repaired by the shared dialect code; error bodies are flat (no ``error``
wrapper) or 422 ``{"detail":[...]}``, both read by ``openai_dialect.error_info``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from providers.base import Call, Capabilities, OptionSpec
from providers.openai_dialect import OpenAIDialect

MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def mistral_tool_id(client_id: str) -> str:
    """A nine-character id Mistral accepts: the client's own when it fits, else a hash of it."""
    if MISTRAL_ID.fullmatch(client_id):
        return client_id
    number = int.from_bytes(hashlib.sha256(client_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


class MistralProvider(OpenAIDialect):
    type_name = "mistral"
    default_api_base = "https://api.mistral.ai/v1"
    capabilities = Capabilities(chat=True, embeddings=True)
    supports_stream_usage = False  # no stream_options: usage rides on the last chunk
    renamed_params = {"seed": "random_seed", "max_completion_tokens": "max_tokens"}
    dropped_params = frozenset({"user", "stream_options", "store"})
    unsupported_params = frozenset({"logit_bias", "audio", "modalities", "web_search_options", "functions",
                                    "function_call"})
    context_length_markers = ("too large for model", "context length", "maximum context length")
    options = {
        "safe_prompt": OptionSpec(bool, None, "send safe_prompt (Mistral's guardrail system prompt) on every chat "
                                              "request unless the client sets it"),
    }

    def transform_body(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        out = super().transform_body(call, body)
        if out.get("tool_choice") == "required":
            out["tool_choice"] = "any"
        if self.config.option("safe_prompt") is not None:
            out.setdefault("safe_prompt", self.config.option("safe_prompt"))
        if isinstance(out.get("messages"), list):
            out["messages"] = self._map_tool_ids(call, out["messages"])
        return out

    def _map_tool_ids(self, call: Call, messages: list[Any]) -> list[Any]:
        back: dict[str, str] = call.scratch.setdefault("mistral_tool_ids", {})

        def mapped(client_id: Any) -> Any:
            if not isinstance(client_id, str) or MISTRAL_ID.fullmatch(client_id):
                return client_id
            back[mistral_tool_id(client_id)] = client_id
            return mistral_tool_id(client_id)

        out = []
        for message in messages:
            if isinstance(message, dict) and message.get("tool_calls"):
                message = {**message, "tool_calls": [
                    {**tc, "id": mapped(tc.get("id"))} if isinstance(tc, dict) else tc
                    for tc in message["tool_calls"]]}
            if isinstance(message, dict) and "tool_call_id" in message:
                message = {**message, "tool_call_id": mapped(message["tool_call_id"])}
            out.append(message)
        return out

    def transform_response(self, call: Call, data: dict[str, Any]) -> bool:
        changed = super().transform_response(call, data)
        for choice in data.get("choices") or []:
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                changed |= self._restore_ids(call, choice["message"].get("tool_calls"))
        return changed

    def transform_chunk(self, call: Call, chunk: dict[str, Any]) -> bool:
        changed = super().transform_chunk(call, chunk)
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and isinstance(choice.get("delta"), dict):
                changed |= self._restore_ids(call, choice["delta"].get("tool_calls"))
        return changed

    def _restore_ids(self, call: Call, tool_calls: Any) -> bool:
        back = call.scratch.get("mistral_tool_ids")
        if not back or not isinstance(tool_calls, list):
            return False
        changed = False
        for tool_call in tool_calls:
            if isinstance(tool_call, dict) and tool_call.get("id") in back:
                tool_call["id"] = back[tool_call["id"]]
                changed = True
        return changed

    def transform_embeddings_body(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        if "dimensions" in body:
            body["output_dimension"] = body.pop("dimensions")
        return body
