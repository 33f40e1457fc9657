"""Replicate predictions -> OpenAI chat.completion; usage (reported or estimated); model listing.

A prediction's ``status`` decides: ``succeeded`` -> a completion (finish_reason ``stop``: Replicate
cannot tell a length stop), ``failed`` / ``canceled`` -> an error, ``starting`` / ``processing`` -> the
polling gave up (a timeout). ``output`` is usually a list of string tokens and is joined.

Usage comes from ``metrics.input_token_count`` / ``output_token_count``. A model that reports neither
gets an estimate (4 characters a token) marked ``Usage.estimated`` and, in the client's body,
``usage.estimated: true``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import ContextLengthExceeded, GatewayError, UpstreamError, UpstreamTimeout
from providers.base import Call, Translated, Usage
from providers.replicate.request import prompt_text
from providers.vendor_answers import epoch_seconds

RUNNING = ("starting", "processing")
CONTEXT_MARKERS = ("maximum context length", "context length", "too many tokens", "prompt is too long")


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def output_text(output: Any) -> str:
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(item, str) or item is None for item in output):
        return "".join(item for item in output if item)
    return orjson.dumps(output).decode()


def usage_of(metrics: Any, body: dict[str, Any], completion: str) -> Usage:
    metrics = metrics if isinstance(metrics, dict) else {}
    prompt = metrics.get("input_token_count")
    output = metrics.get("output_token_count")
    usage = Usage(estimated=prompt is None or output is None)
    usage.prompt_tokens = int(prompt) if prompt is not None else estimate_tokens(prompt_text(body))
    usage.completion_tokens = int(output) if output is not None else estimate_tokens(completion)
    return usage


def openai_usage(usage: Usage) -> dict[str, Any]:
    out = usage.openai()
    if usage.estimated:
        out["estimated"] = True
    return out


def prediction_error(status: str, error: Any, provider_name: str) -> GatewayError:
    """The error for a prediction that did not succeed."""
    if status in RUNNING:
        return UpstreamTimeout(f"provider '{provider_name}': the prediction did not finish in time")
    if status == "canceled":
        return UpstreamError(f"provider '{provider_name}': the prediction was canceled")
    message = str(error or "the prediction failed")
    if any(marker in message.lower() for marker in CONTEXT_MARKERS):
        return ContextLengthExceeded(message, param="messages")
    return UpstreamError(f"provider '{provider_name}': the prediction failed: {message}")


def chat_completion(call: Call, data: dict[str, Any], provider_name: str) -> Translated:
    status = data.get("status")
    if status != "succeeded":
        raise prediction_error(str(status), data.get("error"), provider_name)
    text = output_text(data.get("output"))
    usage = usage_of(data.get("metrics"), call.body, text)
    model = str(data.get("model") or call.model)
    body = {
        "id": call.completion_id,
        "object": "chat.completion",
        "created": call.created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": openai_usage(usage),
    }
    return Translated(body=orjson.dumps(body), usage=usage, model=model)


def models(data: Any) -> list[dict[str, Any]]:
    items = data.get("results") if isinstance(data, dict) else None
    out = []
    for item in items or []:
        if not isinstance(item, dict) or not item.get("owner") or not item.get("name"):
            continue
        version = item.get("latest_version") or {}
        out.append({"id": f"{item['owner']}/{item['name']}", "object": "model",
                    "created": epoch_seconds(version.get("created_at")), "owned_by": str(item["owner"]),
                    "description": item.get("description"), "latest_version": version.get("id")})
    return out

