"""Cohere v2 responses -> OpenAI shapes: chat.completion, embeddings list and model objects."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

import orjson

from gateway.errors import UpstreamError, UpstreamTimeout
from providers.base import Call, Translated, Usage
from providers.openai_compat import normalise_model

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
# finish reasons that mean the generation failed: reported to the client as an error
FAILED = {"ERROR": UpstreamError, "TIMEOUT": UpstreamTimeout}


def finish_reason(native: Any, error: Any = None) -> str:
    """OpenAI finish_reason for Cohere's; raises for ERROR / TIMEOUT."""
    if native in FAILED:
        raise FAILED[native](f"Cohere stopped the generation with {native}" + (f": {error}" if error else ""))
    return FINISH_REASONS.get(native, "stop")


def as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def usage_of(usage: Any) -> Usage | None:
    """Cohere ``usage`` -> Usage: ``tokens`` first, ``billed_units`` as the fallback (floats cast)."""
    if not isinstance(usage, dict):
        return None
    tokens = usage.get("tokens") or {}
    billed = usage.get("billed_units") or {}
    prompt = tokens.get("input_tokens", billed.get("input_tokens"))
    completion = tokens.get("output_tokens", billed.get("output_tokens"))
    return Usage(prompt_tokens=as_int(prompt), completion_tokens=as_int(completion),
                 cached_tokens=as_int(usage.get("cached_tokens")))


def chat_completion(call: Call, data: dict[str, Any]) -> Translated:
    message = data.get("message") or {}
    texts, thinking = [], []
    for item in message.get("content") or []:
        if isinstance(item, dict) and item.get("type") == "text":
            texts.append(str(item.get("text") or ""))
        elif isinstance(item, dict) and item.get("type") == "thinking":
            thinking.append(str(item.get("thinking") or ""))
    calls = [tool_call(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    reason = finish_reason(data.get("finish_reason"), data.get("error"))
    if calls:
        reason = "tool_calls"
    out_message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                                   "refusal": None}
    if calls:
        out_message["tool_calls"] = calls
    if thinking:
        out_message["reasoning_content"] = "".join(thinking)
    usage = usage_of(data.get("usage")) or Usage()
    body = {
        "id": call.completion_id,
        "object": "chat.completion",
        "created": call.created,
        "model": call.model,
        "choices": [{"index": 0, "message": out_message, "logprobs": None, "finish_reason": reason}],
        "usage": usage.openai(),
    }
    return Translated(body=orjson.dumps(body), usage=usage, model=call.model)


def tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {"id": str(call.get("id") or ""), "type": "function",
            "function": {"name": str(function.get("name") or ""), "arguments": arguments}}


def embeddings(call: Call, data: dict[str, Any]) -> Translated:
    by_type = data.get("embeddings")
    vectors = by_type.get("float") if isinstance(by_type, dict) else by_type  # v1 "embeddings_floats" shape
    if not isinstance(vectors, list):
        raise UpstreamError("Cohere answered without float embeddings")
    as_base64 = call.body.get("encoding_format") == "base64"
    items = [{"object": "embedding", "index": i,
              "embedding": encode_base64(vector) if as_base64 else vector}
             for i, vector in enumerate(vectors)]
    meta = data.get("meta") or {}
    billed = meta.get("billed_units") or {}
    tokens = meta.get("tokens") or {}
    prompt = as_int(billed.get("input_tokens", tokens.get("input_tokens")))
    usage = Usage(prompt_tokens=prompt)
    body = {"object": "list", "data": items, "model": call.model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
    return Translated(body=orjson.dumps(body), usage=usage, model=call.model)


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32."""
    packed = array("f", vector)
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def models(data: Any) -> list[dict[str, Any]]:
    items = data.get("models") if isinstance(data, dict) else None
    out = []
    for item in items or []:
        if isinstance(item, dict) and item.get("name"):
            out.append(normalise_model({**item, "id": item["name"], "owned_by": "cohere"}, "cohere"))
    return out
