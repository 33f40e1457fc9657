"""Gemini ``GenerateContentResponse`` -> OpenAI ``chat.completion`` (the pieces the stream reuses too).

- ``candidates[i]`` -> ``choices[i]``; ``content`` joins the text parts that are not thoughts
  (``thought: true`` summaries are left out); ``functionCall`` parts -> ``tool_calls`` with JSON-string
  arguments and ids from ``toolids`` (carrying ``thoughtSignature``).
- ``finishReason`` -> ``finish_reason`` via ``FINISH_REASONS``; a candidate with a function call
  reports ``tool_calls`` whatever Gemini says; a prompt blocked by ``promptFeedback.blockReason``
  (no candidates) becomes one empty choice with ``content_filter``.
- ``usageMetadata`` -> ``Usage``: prompt = promptTokenCount + toolUsePromptTokenCount, completion =
  candidatesTokenCount + thoughtsTokenCount, cached = cachedContentTokenCount, reasoning = thoughts.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamError
from providers.base import Call, Translated, Usage
from providers.gemini.toolids import make_id
from providers.vendor_answers import load_object

_FILTERED = ("SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE", "OTHER")
FINISH_REASONS: dict[str, str] = {"STOP": "stop", "MAX_TOKENS": "length", **{r: "content_filter" for r in _FILTERED}}
# anything else (MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, ...) -> "stop"


def finish_reason(gemini_reason: str | None, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(gemini_reason or "", "stop")


def usage_from(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        prompt_tokens=int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def parts_of(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts or [] if isinstance(p, dict)]


def visible_text(part: dict[str, Any]) -> str | None:
    text = part.get("text")
    return text if isinstance(text, str) and not part.get("thought") else None


def tool_call(call: Call, part: dict[str, Any], n: int) -> dict[str, Any] | None:
    """The OpenAI tool call for a ``functionCall`` part (None for other parts)."""
    function_call = part.get("functionCall")
    if not isinstance(function_call, dict):
        return None
    return {
        "id": make_id(call, n, function_call.get("id"), part.get("thoughtSignature")),
        "type": "function",
        "function": {"name": function_call.get("name", ""),
                     "arguments": orjson.dumps(function_call.get("args") or {}).decode()},
    }


def blocked(data: dict[str, Any]) -> bool:
    """The prompt itself was blocked: no candidates, a ``promptFeedback.blockReason``."""
    feedback = data.get("promptFeedback")
    return not data.get("candidates") and isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def parse_completion(call: Call, body: bytes, provider_name: str) -> Translated:
    data = load_object(body, provider_name)
    if blocked(data):
        choices = [_choice(0, None, [], "content_filter")]
    elif not data.get("candidates"):
        raise UpstreamError(f"provider '{provider_name}' answered without candidates")
    else:
        choices = _choices(call, data["candidates"])
    usage = usage_from(data.get("usageMetadata")) or Usage()
    model = data.get("modelVersion") or call.model
    completion = {"id": call.completion_id, "object": "chat.completion", "created": call.created, "model": model,
                  "choices": choices, "usage": usage.openai()}
    return Translated(body=orjson.dumps(completion), usage=usage, model=model)


def _choices(call: Call, candidates: list[Any]) -> list[dict[str, Any]]:
    choices = []
    n = 0
    for position, candidate in enumerate(c for c in candidates if isinstance(c, dict)):
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in parts_of(candidate):
            text = visible_text(part)
            if text:
                texts.append(text)
            elif (tc := tool_call(call, part, n)) is not None:
                calls.append(tc)
                n += 1
        content = "".join(texts) if texts else None
        reason = finish_reason(candidate.get("finishReason"), bool(calls))
        choices.append(_choice(int(candidate.get("index", position)), content, calls, reason))
    return choices


def _choice(index: int, content: str | None, calls: list[dict[str, Any]], reason: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {"index": index, "message": message, "logprobs": None, "finish_reason": reason}
