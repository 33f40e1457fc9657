"""Shared translation for upstreams that speak OpenAI's Chat Completions dialect.

The body goes out as the client sent it, with three documented edits: the model id becomes the
deployment's upstream id; streams ask for ``stream_options.include_usage`` so every request can be
priced (the usage chunk is removed again when the client did not ask for it); and the routing-ish
fields ``api_key``, ``api_base`` and ``base_url`` are never forwarded. Responses are relayed as the
upstream's bytes; they are only parsed to read usage and the reported model.

Dialects (Azure, Mistral, xAI, Together, ...) subclass ``OpenAICompatProvider`` and override the
hooks: ``chat_url``, ``embeddings_url``, ``auth_headers``, ``transform_body``, ``transform_chunk``,
``transform_response``, ``map_error`` and ``parse_list_models``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    UpstreamError,
    UpstreamRateLimited,
    from_upstream_status,
    parse_retry_after,
)
from gateway.sse import SSEEvent
from providers.base import (
    answer_json, event_json,
    Call,
    Capabilities,
    Provider,
    SSEStreamTranslator,
    StreamTranslator,
    Translated,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
    _default_error_fields,
)

# fields a client may send that must never reach an upstream (they would carry the client's key or
# let the client pick the upstream's address)
FORBIDDEN_FIELDS = frozenset({"api_key", "api_base", "base_url", "api_version", "organization"})

CONTEXT_LENGTH_MARKERS = ("maximum context length", "context_length_exceeded", "context window", "too many tokens")


class OpenAICompatProvider(Provider):
    capabilities = Capabilities(chat=True, embeddings=True)
    # whether the upstream honours stream_options.include_usage
    supports_stream_usage = True

    # -- URLs and headers (override in dialects) --------------------------------------------------

    def chat_url(self, call: Call) -> str:
        return f"{self.api_base}/chat/completions"

    def embeddings_url(self, call: Call) -> str:
        return f"{self.api_base}/embeddings"

    # -- chat -----------------------------------------------------------------------------------

    def build_chat(self, call: Call) -> UpstreamRequest:
        body = self.transform_body(call, self.check_params(call))
        return UpstreamRequest("POST", self.chat_url(call), self.auth_headers(), orjson.dumps(body), stream=call.stream)

    def transform_body(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream body: the client's, with the model id and the gateway's documented edits."""
        out = {k: v for k, v in body.items() if k not in FORBIDDEN_FIELDS}
        out["model"] = call.model
        if call.stream and self.supports_stream_usage:
            options = dict(out.get("stream_options") or {})
            options["include_usage"] = True
            out["stream_options"] = options
        return out

    def parse_chat(self, call: Call, response: UpstreamResponse) -> Translated:
        data = answer_json(response.body, self.config.name)
        if not isinstance(data, dict) or "choices" not in data:
            raise UpstreamError(f"provider '{self.config.name}' answered without 'choices'")
        changed = self.transform_response(call, data)
        body = orjson.dumps(data) if changed else response.body
        return Translated(body=body, usage=Usage.from_openai(data.get("usage")), model=data.get("model"))

    def transform_response(self, call: Call, data: dict[str, Any]) -> bool:
        """Edit a parsed chat.completion in place; return True when it changed (it is re-encoded)."""
        return False

    def stream_translator(self, call: Call) -> StreamTranslator:
        return OpenAIStreamTranslator(self, call)

    def transform_chunk(self, call: Call, chunk: dict[str, Any]) -> bool:
        """Edit a parsed chunk in place; return True when it changed (it is re-encoded)."""
        return False

    # -- embeddings -----------------------------------------------------------------------------

    def build_embeddings(self, call: Call) -> UpstreamRequest:
        body = {k: v for k, v in call.body.items() if k not in FORBIDDEN_FIELDS}
        body["model"] = call.model
        return UpstreamRequest("POST", self.embeddings_url(call), self.auth_headers(), orjson.dumps(body))

    def parse_embeddings(self, call: Call, response: UpstreamResponse) -> Translated:
        data = answer_json(response.body, self.config.name)
        usage = data.get("usage") or {} if isinstance(data, dict) else {}
        prompt = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return Translated(body=response.body, usage=Usage(prompt_tokens=prompt), model=data.get("model"))

    # -- models ---------------------------------------------------------------------------------

    def parse_list_models(self, response: UpstreamResponse) -> list[dict[str, Any]]:
        data = response.json()
        items = data.get("data", []) if isinstance(data, dict) else data
        return [normalise_model(item, self.type_name) for item in items or [] if isinstance(item, dict)]

    # -- errors ---------------------------------------------------------------------------------

    def map_error(self, response: UpstreamResponse) -> GatewayError:
        message, code, param = _default_error_fields(response)
        message = self.scrub(message)
        retry_after = parse_retry_after(dict(response.headers))
        if response.status in (400, 413) and (code == "context_length_exceeded"
                                              or any(m in message.lower() for m in CONTEXT_LENGTH_MARKERS)):
            return ContextLengthExceeded(message, param=param or "messages")
        if response.status == 429:
            if code == "insufficient_quota":
                return UpstreamRateLimited(message, code="insufficient_quota", error_type="insufficient_quota",
                                           retry_after=retry_after)
            return UpstreamRateLimited(message, code=code or "rate_limit_exceeded", retry_after=retry_after)
        return from_upstream_status(response.status, message, code=code, param=param, retry_after=retry_after)


def normalise_model(item: dict[str, Any], owner: str) -> dict[str, Any]:
    """An OpenAI ``model`` object from a vendor's list entry (vendor extras kept)."""
    model = dict(item)
    model["id"] = str(item.get("id") or item.get("name") or "")
    model["object"] = "model"
    model["created"] = int(item.get("created") or 0)
    model["owned_by"] = str(item.get("owned_by") or owner)
    return model


class OpenAIStreamTranslator(SSEStreamTranslator):
    """Relays OpenAI SSE chunks, reading usage and the model, dropping what the client did not ask for."""

    __slots__ = ("provider", "call", "done", "usage", "model")

    def __init__(self, provider: OpenAICompatProvider, call: Call) -> None:
        super().__init__()
        self.provider = provider
        self.call = call
        self.done = False
        self.usage: Usage | None = None
        self.model: str | None = None

    def _chunk(self, data: str) -> dict[str, Any] | None:
        """The chunk an event carries; None for none (``[DONE]`` marks the end); raises for an error object."""
        if not data:
            return None
        if data == "[DONE]":
            self.done = True
            return None
        chunk = event_json(data, self.provider.config.name)
        if not isinstance(chunk, dict):
            return None
        if "error" in chunk and "choices" not in chunk:
            error = chunk["error"]
            if not isinstance(error, dict):
                error = {"message": str(error), "type": chunk.get("error_type")}
            raise stream_error(self.provider, error)
        return chunk

    def _event(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        chunk = self._chunk(data)
        if chunk is None:
            return []
        if self.model is None:
            self.model = chunk.get("model")
        changed = self.provider.transform_chunk(self.call, chunk)
        if "usage" in chunk:
            usage = chunk["usage"]
            if usage:
                self.usage = Usage.from_openai(usage)
            if not self.call.include_usage:
                # the gateway asked for usage, not the client: remove what the client would not get
                if usage and not chunk.get("choices"):
                    return []
                del chunk["usage"]
                changed = True
        if changed:
            return [b"data: %b\n\n" % orjson.dumps(chunk)]
        return [f"data: {data}\n\n".encode()]

    def _end(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(f"provider '{self.provider.config.name}' ended the stream before [DONE]")
        return []


def stream_error(provider: Provider, error: dict[str, Any]) -> GatewayError:
    """A GatewayError for an error object found inside an OpenAI-style stream."""
    status = error.get("status") if isinstance(error.get("status"), int) else 502
    body = orjson.dumps({"error": error})
    mapped = provider.map_error(UpstreamResponse(status=status, headers={}, body=body))
    if status == 502 and not isinstance(mapped, UpstreamError):
        return UpstreamError(mapped.message)
    return mapped
