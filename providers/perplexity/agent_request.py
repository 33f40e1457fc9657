"""OpenAI chat request -> Perplexity Agent API request (``POST /v1/agent``, Responses-shaped, strict).

The Agent API rejects any field it does not know, so the body is built from an allow-list:

    messages              -> instructions (leading system/developer messages) + input items
                             (type "message", "function_call", "function_call_output")
    max_(completion_)tokens -> max_output_tokens
    temperature, top_p, parallel_tool_calls, response_format, stream  -> unchanged
    reasoning_effort      -> reasoning.effort
    tools (function)      -> flat {"type":"function","name","description","parameters","strict"};
                             other tool types (web_search, fetch_url) pass as sent
    web_search_options, search_*_filter -> one {"type":"web_search","filters":{...}} tool
    tool_choice           -> none|auto|required, or {"type":"function","name"}
    model "preset:<name>" -> preset; any other model id -> model

Fields with no Agent API equivalent (``stop``, ``seed``, ``n`` > 1, penalties, ``logprobs``, ...) are
refused by ``unsupported`` (or dropped with ``drop_unsupported_params``); hints that change nothing
for the client (``user``, ``store``, ``metadata``, ``stream_options`` — usage is always reported) are
left out silently.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter
from providers.base import Call
from providers.openai_compat import FORBIDDEN_FIELDS

SEARCH_FILTERS = ("search_domain_filter", "search_recency_filter", "search_language_filter",
                  "search_after_date_filter", "search_before_date_filter", "last_updated_after_filter",
                  "last_updated_before_filter")
MAPPED = frozenset({"model", "messages", "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p",
                    "parallel_tool_calls", "reasoning_effort", "response_format", "tools", "tool_choice",
                    "web_search_options", *SEARCH_FILTERS})
IGNORED = frozenset({"stream_options", "user", "safety_identifier", "store", "metadata", "service_tier",
                     "prompt_cache_key"}) | FORBIDDEN_FIELDS


def unsupported(body: dict[str, Any]) -> frozenset[str]:
    """The client's fields the Agent API cannot take."""
    names = {k for k in body if k not in MAPPED and k not in IGNORED and k != "n"}
    if body.get("n") not in (None, 1):
        names.add("n")
    return frozenset(names)


def build(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    out: dict[str, Any] = {}
    if call.model.startswith("preset:"):
        out["preset"] = call.model[len("preset:"):]
    else:
        out["model"] = call.model
    instructions, items = _input(messages)
    if instructions:
        out["instructions"] = instructions
    out["input"] = items
    if call.stream:
        out["stream"] = True
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        out["max_output_tokens"] = limit
    for name in ("temperature", "top_p", "parallel_tool_calls"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("reasoning_effort"):
        out["reasoning"] = {"effort": body["reasoning_effort"]}
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") != "text":
        out["response_format"] = fmt
    tools = _tools(body)
    if tools:
        out["tools"] = tools
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    return out


def _input(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id -> function name, for function_call_output
    leading = True
    for message in messages:
        if not isinstance(message, dict):
            raise InvalidRequest("each message must be an object", param="messages")
        role = message.get("role")
        if leading and role in ("system", "developer"):
            instructions.append(_text(message.get("content")))
            continue
        leading = False
        if role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            item = {"type": "function_call_output", "call_id": call_id, "output": _text(message.get("content"))}
            if call_id in names:
                item["name"] = names[call_id]
            items.append(item)
        elif role == "assistant":
            text = _text(message.get("content"))
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for tool_call in message.get("tool_calls") or []:
                function = tool_call.get("function") or {}
                names[str(tool_call.get("id"))] = str(function.get("name") or "")
                items.append({"type": "function_call", "call_id": str(tool_call.get("id") or ""),
                              "name": str(function.get("name") or ""),
                              "arguments": str(function.get("arguments") or "{}")})
        elif role in ("user", "system", "developer"):
            items.append({"type": "message", "role": role, "content": _content(message.get("content"))})
        else:
            raise InvalidRequest(f"unknown message role {role!r}", param="messages")
    return "\n\n".join(t for t in instructions if t), items


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text") or p.get("refusal") or "") for p in content if isinstance(p, dict))


def _content(content: Any) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "input_text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "input_image", "image_url": url})
        else:
            raise UnsupportedParameter(f"content parts of type {kind!r} are not supported by the Perplexity "
                                       "Agent API", param="messages")
    if all(p["type"] == "input_text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
            function = tool["function"]
            flat = {"type": "function", "name": function.get("name")}
            flat.update({k: function[k] for k in ("description", "parameters", "strict") if k in function})
            tools.append(flat)
        elif isinstance(tool, dict):
            tools.append(tool)
    filters = {name: body[name] for name in SEARCH_FILTERS if body.get(name) is not None}
    wants_search = body.get("web_search_options") is not None or filters
    if wants_search and not any(t.get("type") == "web_search" for t in tools):
        search: dict[str, Any] = {"type": "web_search"}
        if filters:
            search["filters"] = filters
        location = ((body.get("web_search_options") or {}).get("user_location") or {}).get("approximate")
        if isinstance(location, dict):
            search["user_location"] = location
        tools.append(search)
    return tools


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "name": (choice.get("function") or {}).get("name") or choice.get("name")}
    return choice
