"""Anthropic ``message`` -> OpenAI ``chat.completion``; the finish-reason and usage tables.

Text blocks are joined into ``content`` (``null`` when there are none); ``tool_use`` blocks become
``tool_calls`` with JSON-string arguments; ``thinking`` / ``redacted_thinking`` and server-tool
blocks are not shown to OpenAI clients (their tokens still count in ``completion_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import UpstreamError
from providers.base import Call, Translated, Usage, answer_json

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """OpenAI ``finish_reason`` for an Anthropic ``stop_reason`` (unknown values read as ``stop``)."""
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_from(raw: Mapping[str, Any] | None) -> Usage:
    """prompt = input + cache creation + cache read; completion = output; cached = cache read."""
    raw = raw or {}
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + int(raw.get("cache_creation_input_tokens") or 0) + cache_read
    details = raw.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, Mapping) else None
    return Usage(prompt_tokens=prompt, completion_tokens=int(raw.get("output_tokens") or 0),
                 cached_tokens=cache_read, reasoning_tokens=int(thinking or 0))


def tool_call(block: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"id": str(block.get("id") or ""), "type": "function",
                            "function": {"name": str(block.get("name") or ""),
                                         "arguments": orjson.dumps(block.get("input") or {}).decode()}}
    if index is not None:
        call = {"index": index, **call}
    return call


def parse_message(call: Call, raw: bytes, provider_name: str) -> Translated:
    data = answer_json(raw, provider_name)
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise UpstreamError(f"provider '{provider_name}' answered without a message 'content' list")
    texts = [str(b.get("text") or "") for b in data["content"] if isinstance(b, dict) and b.get("type") == "text"]
    calls = [tool_call(b) for b in data["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    usage = usage_from(data.get("usage"))
    model = data.get("model") or call.model
    completion = {
        "id": call.completion_id,
        "object": "chat.completion",
        "created": call.created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(data.get("stop_reason"))}],
        "usage": usage.openai(),
    }
    return Translated(body=orjson.dumps(completion), usage=usage, model=model)
