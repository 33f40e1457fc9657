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
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from gateway.errors import ContextLengthExceeded, GatewayError, UpstreamClientError, UpstreamError
from gateway.sse import encode_data
from providers.base import Call, ProviderConfig, Translated, UpstreamRequest, UpstreamResponse, Usage, usage_chunk
from providers.openai_compat import (
    FORBIDDEN_FIELDS,
    OpenAICompatProvider,
    OpenAIStreamTranslator,
    stream_error,
)

OPENAI_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})

# finish_reason values seen on OpenAI-compatible servers (vendor-apis §0.3, §13) -> OpenAI's
FINISH_REASONS: Mapping[str, str] = {
    "eos": "stop",  # Together
    "eos_token": "stop",  # TGI
    "end_turn": "stop",
    "stop_sequence": "stop",
    "model_length": "length",  # Mistral
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "function_call": "function_call",
}

# a machine-readable error code; vendor codes that are numbers ("429") or sentences are not kept
_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The fields of a vendor error body, whatever its shape."""

    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None
    raw: dict[str, Any] | None = None  # the parsed body, for vendor-specific fields


def error_info(response: UpstreamResponse) -> ErrorInfo:
    """Reads ``{"error":{...}}``, ``{"error":"text",...}``, flat ``{"message",...}`` and 422
    ``{"detail":[{"loc","msg"}]}`` bodies, and plain text."""
    try:
        body = orjson.loads(response.body) if response.body else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        text = response.body[:500].decode("utf-8", "replace").strip()
        return ErrorInfo(text or f"upstream answered HTTP {response.status}")
    error = body.get("error", body)
    if isinstance(error, str):
        return ErrorInfo(error, _text(body.get("error_type") or body.get("type")), _code(body.get("code")), raw=body)
    if not isinstance(error, dict):
        error = body
    detail = error.get("detail")
    message = error.get("message") or error.get("msg")
    if isinstance(message, dict):  # Mistral wraps a validation error: {"message": {"detail": [...]}}
        detail, message = message.get("detail", message), None
    param = error.get("param")
    if not message and isinstance(detail, list):
        message, param = _validation_detail(detail)
    elif not message and detail:
        message = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    return ErrorInfo(str(message or f"upstream answered HTTP {response.status}"), _text(error.get("type")),
                     _code(error.get("code")), param if isinstance(param, str) else None, raw=body)


def _validation_detail(detail: list[Any]) -> tuple[str, str | None]:
    parts: list[str] = []
    param = None
    for item in detail:
        if not isinstance(item, dict):
            parts.append(str(item))
            continue
        loc = [str(p) for p in item.get("loc") or [] if p != "body"]
        if loc and param is None:
            param = loc[0]
        parts.append(f"{'.'.join(loc)}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
    return "; ".join(parts) or "request validation failed", param


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) and _CODE.fullmatch(value) and len(value) <= 64 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def b64_floats(vector: list[float]) -> str:
    """An embedding as OpenAI's base64 encoding: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


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
        changed |= _fill(data, "model", call.model)
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
        changed |= _fill(chunk, "model", call.model)
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

    def stream_translator(self, call: Call) -> DialectStreamTranslator:
        return DialectStreamTranslator(self, call)

    # -- embeddings -----------------------------------------------------------------------------

    def build_embeddings(self, call: Call) -> UpstreamRequest:
        body = {k: v for k, v in call.body.items() if k not in FORBIDDEN_FIELDS}
        body["model"] = call.model
        if not self.native_base64:
            body.pop("encoding_format", None)  # floats are every vendor's default; encoded here if asked
        body = self.transform_embeddings_body(call, self.edit_params(body))
        return UpstreamRequest("POST", self.embeddings_url(call), self.auth_headers(), orjson.dumps(body))

    def transform_embeddings_body(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def parse_embeddings(self, call: Call, response: UpstreamResponse) -> Translated:
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"provider '{self.config.name}' answered with a body that is not JSON") from None
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


def _fill(obj: dict[str, Any], key: str, value: Any, *, only_missing: bool = False) -> bool:
    """Set ``obj[key]`` when it is missing (or, unless ``only_missing``, empty); True when set."""
    if key in obj and (only_missing or obj[key] not in (None, "", 0)):
        return False
    obj[key] = value
    return True


def repair_message(message: dict[str, Any]) -> bool:
    changed = _fill(message, "role", "assistant")
    changed |= _join_content(message)
    changed |= _fill(message, "content", None, only_missing=True) | _fill(message, "refusal", None, only_missing=True)
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            changed |= _fill(call, "type", "function") | _dump_arguments(call)
    return changed


def repair_delta(call: Call, choice_index: int, delta: dict[str, Any]) -> bool:
    changed = _join_content(delta)
    tool_calls = delta.get("tool_calls")
    if not isinstance(tool_calls, list):
        return changed
    ids: dict[tuple[int, str], int] = call.scratch.setdefault("dialect_tool_ids", {})
    for position, tool_call in enumerate(tool_calls):
        if not isinstance(tool_call, dict):
            continue
        if "index" not in tool_call:  # key calls by id when the server leaves out the index
            tool_call["index"] = _tool_index(ids, choice_index, tool_call.get("id"), position)
            changed = True
        if tool_call.get("id"):
            changed |= _fill(tool_call, "type", "function")
        changed |= _dump_arguments(tool_call)
    return changed


def _tool_index(ids: dict[tuple[int, str], int], choice_index: int, call_id: Any, position: int) -> int:
    known = sum(1 for c, _ in ids if c == choice_index)
    if not call_id:  # a continuation: the latest call of this choice
        return known - 1 if known else position
    return ids.setdefault((choice_index, str(call_id)), known)


def _dump_arguments(tool_call: dict[str, Any]) -> bool:
    function = tool_call.get("function")
    if isinstance(function, dict) and isinstance(function.get("arguments"), (dict, list)):
        function["arguments"] = orjson.dumps(function["arguments"]).decode()
        return True
    return False


def _join_content(message: dict[str, Any]) -> bool:
    """Content sent as a list of parts (Mistral): text joined; thinking parts to ``reasoning_content``."""
    content = message.get("content")
    if not isinstance(content, list):
        return False
    text: list[str] = []
    thinking: list[str] = []
    for part in content:
        if isinstance(part, str):
            text.append(part)
        elif isinstance(part, dict) and part.get("type") == "thinking":
            thinking.extend(_part_text(p) for p in part.get("thinking") or [])
        elif isinstance(part, dict):
            text.append(_part_text(part))
    message["content"] = "".join(text)
    if thinking:
        message["reasoning_content"] = message.get("reasoning_content") or "".join(thinking)
    return True


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    return str(part.get("text") or "") if isinstance(part, dict) else ""


class DialectStreamTranslator(OpenAIStreamTranslator):
    """``OpenAIStreamTranslator`` for dialects: repairs chunks and normalises where usage travels."""

    __slots__ = ("finished", "usage_sent", "chunk_id")

    def __init__(self, provider: OpenAIDialect, call: Call) -> None:
        super().__init__(provider, call)
        self.finished = False  # a chunk with a finish_reason was seen
        self.usage_sent = False  # the client got a usage-only chunk
        self.chunk_id: str | None = None

    def _event(self, data: str) -> bytes | None:
        if not data:
            return None
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"provider '{self.provider.config.name}' sent a stream event that is not JSON") from None
        if not isinstance(chunk, dict):
            return None
        if "error" in chunk and "choices" not in chunk:
            error = chunk["error"]
            if not isinstance(error, dict):
                error = {"message": str(error), "type": chunk.get("error_type")}
            raise stream_error(self.provider, error)
        if self.model is None and chunk.get("model"):
            self.model = chunk["model"]
        changed = self.provider.transform_chunk(self.call, chunk)
        changed |= self._move_usage(chunk)
        if not chunk.get("choices"):
            if not (chunk.get("usage") and self.call.include_usage):
                return None  # nothing an OpenAI client reads (or usage it did not ask for)
            self.usage_sent = True
        elif any(isinstance(c, dict) and c.get("finish_reason") for c in chunk["choices"]):
            self.finished = True
        self.chunk_id = self.chunk_id or chunk.get("id")
        if changed:
            return encode_data(chunk)
        return b"data: " + data.encode() + b"\n\n"

    def _move_usage(self, chunk: dict[str, Any]) -> bool:
        """Read usage; keep it only on a usage-only chunk (the one OpenAI clients read it from)."""
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
            if chunk.get("choices"):
                if self.call.include_usage:
                    chunk["usage"] = None
                else:
                    del chunk["usage"]
                return True
        return False

    def finish(self) -> list[bytes]:
        frames = [f for f in (self._event(e.data) for e in self.decoder.flush()) if f is not None]
        if not self.done and not (self.provider.finish_ends_stream and self.finished):
            raise UpstreamError(f"provider '{self.provider.config.name}' ended the stream before it finished")
        if self.call.include_usage and self.usage is not None and not self.usage_sent:
            chunk = usage_chunk(self.call, self.usage, model=self.model)
            chunk["id"] = self.chunk_id or chunk["id"]
            frames.append(encode_data(chunk))
        return frames
