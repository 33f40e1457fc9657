"""What the OpenAI-dialect vendors share beyond ``openai_compat``: servers that speak Chat Completions
almost, but not exactly, like OpenAI (Azure, Mistral, Perplexity Sonar, xAI, Together, Hugging Face,
any custom server).

``OpenAIDialect`` keeps the relay-the-bytes design of ``OpenAICompatProvider`` and adds, as tables and
small hooks a vendor sets:

- request edits: ``renamed_params`` (Mistral ``seed`` -> ``random_seed``) and ``dropped_params``
  (fields the vendor rejects and that change nothing for the client, removed silently and documented);
- response repair (``repair_message``/``repair_choices``): a missing ``id``/``object``/``created``/
  ``model``/``refusal``/``logprobs``/``delta`` filled in, tool-call arguments sent as JSON objects
  dumped to strings, content sent as a list of parts joined, vendor ``finish_reason`` values mapped
  (``finish_reasons``), and those that mean failure raised (``error_finish_reasons``);
- a stream translator that puts usage where OpenAI clients look for it (the separate last chunk with
  ``choices: []``, only when asked), drops chunks that carry neither a choice nor usage, and, for
  servers that never send ``[DONE]``, accepts the chunk with a ``finish_reason`` as the end
  (``finish_ends_stream``);
- embeddings asked as floats and encoded to base64 by the gateway when the vendor cannot
  (``native_base64``);
- one reading of every error body these servers send (``error_info``) before the usual mapping.

The repairs and the error reading live in ``dialect_repair``, the stream translator in ``dialect_stream``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from gateway.errors import ContextLengthExceeded, GatewayError, UpstreamClientError, UpstreamError
from providers.base import (Call, Provider, ProviderConfig, Translated, UpstreamRequest, UpstreamResponse, Usage,
                            answer_json)
from providers.dialect_repair import (
    FINISH_REASONS,
    OPENAI_FINISH_REASONS,
    ErrorInfo,
    _fill,
    b64_floats,
    drop_null_fingerprint,
    error_info,
    repair_delta,
    repair_message,
)
from providers.dialect_stream import DialectStreamTranslator

__all__ = ["ErrorInfo", "OpenAIDialect", "b64_floats", "error_info"]
from providers.openai_compat import FORBIDDEN_FIELDS, OpenAICompatProvider


class OpenAIDialect(OpenAICompatProvider):
    """Base of the OpenAI-dialect vendors: set the tables, override the hooks."""

    renamed_params: ClassVar[Mapping[str, str]] = {}
    dropped_params: ClassVar[frozenset[str]] = frozenset()
    finish_reasons: ClassVar[Mapping[str, str]] = FINISH_REASONS
    error_finish_reasons: ClassVar[frozenset[str]] = frozenset({"error"})
    context_length_markers: ClassVar[tuple[str, ...]] = ()
    # the vendor may end a stream after the chunk with a finish_reason, without [DONE]
    finish_ends_stream: ClassVar[bool] = False
    # the vendor honours encoding_format "base64" on embeddings
    native_base64: ClassVar[bool] = False

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.renames: dict[str, str] = dict(self.renamed_params)
        self.drops: frozenset[str] = frozenset(self.dropped_params)

    # -- requests -------------------------------------------------------------------------------

    def edit_params(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply ``renames`` and ``drops`` to an outgoing body (a copy)."""
        out = {k: v for k, v in body.items() if k not in self.drops}
        for source, target in self.renames.items():
            if source in out:
                out[target] = out.pop(source)
        return out

    def transform_body(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        return self.edit_params(super().transform_body(call, body))

    # -- responses ------------------------------------------------------------------------------

    def transform_response(self, call: Call, data: dict[str, Any]) -> bool:
        changed = _fill(data, "id", call.completion_id) | _fill(data, "created", call.created)
        changed |= _fill(data, "model", call.model) | drop_null_fingerprint(data)
        if data.get("object") != "chat.completion":
            data["object"] = "chat.completion"
            changed = True
        for position, choice in enumerate(data.get("choices") or []):
            if not isinstance(choice, dict):
                continue
            changed |= _fill(choice, "index", position, only_missing=True)
            changed |= _fill(choice, "logprobs", None, only_missing=True)
            message = choice.get("message")
            if not isinstance(message, dict):
                message = choice["message"] = {}
                changed = True
            changed |= repair_message(message)
            finish = choice.get("finish_reason")
            if finish is None:
                choice["finish_reason"] = "tool_calls" if message.get("tool_calls") else "stop"
                changed = True
            else:
                changed |= self.repair_finish(choice)
        return changed

    def transform_chunk(self, call: Call, chunk: dict[str, Any]) -> bool:
        changed = _fill(chunk, "id", call.completion_id) | _fill(chunk, "created", call.created)
        changed |= _fill(chunk, "model", call.model) | drop_null_fingerprint(chunk)
        if chunk.get("object") != "chat.completion.chunk":
            chunk["object"] = "chat.completion.chunk"
            changed = True
        for position, choice in enumerate(chunk.get("choices") or []):
            if not isinstance(choice, dict):
                continue
            changed |= _fill(choice, "index", position, only_missing=True)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice["delta"] = {}
                changed = True
            changed |= repair_delta(call, choice["index"], delta)
            if "finish_reason" not in choice:
                choice["finish_reason"] = None
                changed = True
            elif choice["finish_reason"] is not None:
                changed |= self.repair_finish(choice)
        return changed

    def repair_finish(self, choice: dict[str, Any]) -> bool:
        """Map the choice's vendor finish_reason onto OpenAI's; raise for one that means failure."""
        finish = choice["finish_reason"]
        if finish in OPENAI_FINISH_REASONS:
            return False
        if finish in self.error_finish_reasons:
            raise UpstreamError(f"provider '{self.config.name}' stopped generating with finish_reason '{finish}'")
        choice["finish_reason"] = self.finish_reasons.get(finish, "stop")
        return True

    def stream_translator(self, call: Call) -> DialectStreamTranslator:  # type: ignore[override]
        return DialectStreamTranslator(self, call)

    # -- embeddings -----------------------------------------------------------------------------

    def build_embeddings(self, call: Call) -> UpstreamRequest:
        if not self.capabilities.embeddings:
            return Provider.build_embeddings(self, call)  # raises: the vendor has no embeddings API
        body = {k: v for k, v in call.body.items() if k not in FORBIDDEN_FIELDS}
        body["model"] = call.model
        if not self.native_base64:
            body.pop("encoding_format", None)  # floats are every vendor's default; encoded here if asked
        body = self.transform_embeddings_body(call, self.edit_params(body))
        return UpstreamRequest("POST", self.embeddings_url(call), self.auth_headers(), orjson.dumps(body))

    def transform_embeddings_body(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def parse_embeddings(self, call: Call, response: UpstreamResponse) -> Translated:
        data = answer_json(response.body, self.config.name)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamError(f"provider '{self.config.name}' answered embeddings without 'data'")
        vectors = [item.get("embedding") for item in data["data"] if isinstance(item, dict)]
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return self.embeddings_result(call, vectors, Usage(prompt_tokens=prompt), data.get("model"))

    def embeddings_result(self, call: Call, vectors: list[Any], usage: Usage, model: str | None) -> Translated:
        """The OpenAI embeddings list, honouring the client's ``encoding_format``."""
        as_base64 = call.body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": b64_floats(v) if as_base64 and isinstance(v, list) else v}
                for i, v in enumerate(vectors)]
        body = {"object": "list", "data": data, "model": model or call.model,
                "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}}
        return Translated(body=orjson.dumps(body), usage=usage, model=model)

    # -- errors ---------------------------------------------------------------------------------

    def map_error(self, response: UpstreamResponse) -> GatewayError:
        return self.map_error_info(response, error_info(response))

    def map_error_info(self, response: UpstreamResponse, info: ErrorInfo) -> GatewayError:
        """The gateway error for a vendor error; vendors refine it (message matching belongs here)."""
        message = self.scrub(info.message)
        lowered = message.lower()
        if response.status in (400, 413, 422) and any(m in lowered for m in self.context_length_markers):
            return ContextLengthExceeded(message, param=info.param or "messages")
        if response.status == 422:  # a validation error is a bad request to an OpenAI client
            return UpstreamClientError(message, status=400, code=info.code, param=info.param)
        envelope = {"error": {"message": message, "type": info.type, "code": info.code, "param": info.param}}
        return super().map_error(UpstreamResponse(response.status, response.headers, orjson.dumps(envelope)))
