"""Perplexity Agent API response -> OpenAI ``chat.completion`` (shared with the stream translator).

The Agent API reports some failures inside an HTTP 200: ``status`` ``failed`` or ``cancelled`` is an
error, ``incomplete`` with ``incomplete_details.reason: max_output_tokens`` is ``finish_reason: length``.
Output items become one assistant message: ``message`` items' ``output_text`` joined as content,
``function_call`` items as ``tool_calls`` (``call_id`` is the tool-call id), ``search_results`` items as the
extra top-level ``search_results`` list and the text's URL annotations (or, when there are none, the
search results' URLs) as ``citations``, as Sonar sent them. Usage: ``input_tokens``/``output_tokens``,
with the vendor's ``cost`` kept as an extra usage field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import GatewayError, UpstreamError
from providers.base import Call, Provider, Translated, UpstreamResponse, Usage, answer_json

# Agent API error codes -> the HTTP status an equivalent HTTP error would carry
FAILURE_STATUS = {"rate_limit_exceeded": 429, "request_rate_limit_exceeded": 429, "invalid_request": 400,
                  "invalid_prompt": 400, "invalid_model": 400, "payload_too_large": 413, "forbidden": 403,
                  "not_found": 404, "overloaded": 503, "gateway_timeout": 504}


@dataclass(slots=True)
class Output:
    """What a response's ``output`` items hold, in OpenAI terms."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    search_results: list[dict[str, Any]] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)


def read_output(items: Any) -> Output:
    out = Output()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") in ("output_text", "text"):
                    out.text += str(part.get("text") or "")
                    _cite(out.citations, part.get("annotations"))
        elif kind == "function_call":
            out.tool_calls.append(tool_call(item))
        elif kind == "search_results":
            out.search_results.extend(r for r in item.get("results") or [] if isinstance(r, dict))
    if not out.citations:
        _cite(out.citations, out.search_results)
    return out


def _cite(citations: list[str], sources: Any) -> None:
    for source in sources or []:
        url = source.get("url") if isinstance(source, dict) else None
        if isinstance(url, str) and url not in citations:
            citations.append(url)


def tool_call(item: dict[str, Any]) -> dict[str, Any]:
    arguments = item.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {"id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
            "function": {"name": str(item.get("name") or ""), "arguments": arguments}}


def finish_reason(response: dict[str, Any], has_tool_calls: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if has_tool_calls else "stop"


def usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    input_details = data.get("input_tokens_details") or {}
    output_details = data.get("output_tokens_details") or {}
    return Usage(prompt_tokens=int(data.get("input_tokens") or 0),
                 completion_tokens=int(data.get("output_tokens") or 0),
                 cached_tokens=int(input_details.get("cached_tokens") or input_details.get("cache_read_input_tokens")
                                   or 0),
                 reasoning_tokens=int(output_details.get("reasoning_tokens") or 0))


def openai_usage(data: Any, counted: Usage) -> dict[str, Any]:
    out = counted.openai()
    if isinstance(data, dict) and isinstance(data.get("cost"), dict):
        out["cost"] = data["cost"]
    return out


def failure(provider: Provider, response: dict[str, Any]) -> GatewayError:
    """The gateway error for a ``failed``/``cancelled`` response or an ``error`` stream event."""
    error = response.get("error") if isinstance(response.get("error"), dict) else response
    if response.get("status") == "cancelled":
        reason = f": {error['message']}" if error.get("message") else ""
        return UpstreamError(provider.scrub(f"the Agent API cancelled the response{reason}"))
    message = str(error.get("message") or f"the Agent API reported status '{response.get('status', 'failed')}'")
    code = error.get("code") if isinstance(error.get("code"), str) else error.get("type")
    status = FAILURE_STATUS.get(code, 502) if isinstance(code, str) else 502
    if isinstance(error.get("code"), int) and 400 <= error["code"] < 600:
        status = error["code"]
    body = {"error": {"message": message, "type": error.get("type"), "code": code, "param": error.get("param")}}
    return provider.map_error(UpstreamResponse(status, {}, orjson.dumps(body)))


def translate(provider: Provider, call: Call, response: UpstreamResponse) -> Translated:
    data = answer_json(response.body, provider.config.name)
    if not isinstance(data, dict):
        raise UpstreamError(f"provider '{provider.config.name}' answered with an unexpected body")
    status = data.get("status")
    if status in ("failed", "cancelled") or (status is None and data.get("error")):
        raise failure(provider, data)
    if status not in ("completed", "incomplete"):
        raise UpstreamError(f"provider '{provider.config.name}' answered with response status '{status}'")
    output = read_output(data.get("output"))
    counted = usage(data.get("usage")) or Usage()
    message: dict[str, Any] = {"role": "assistant", "content": output.text or (None if output.tool_calls else ""),
                               "refusal": None}
    if output.tool_calls:
        message["tool_calls"] = output.tool_calls
    model = data.get("model") or call.model
    body: dict[str, Any] = {
        "id": call.completion_id, "object": "chat.completion", "created": call.created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(data, bool(output.tool_calls))}],
        "usage": openai_usage(data.get("usage"), counted),
    }
    if output.citations:
        body["citations"] = output.citations
    if output.search_results:
        body["search_results"] = output.search_results
    return Translated(body=orjson.dumps(body), usage=counted, model=data.get("model"))
