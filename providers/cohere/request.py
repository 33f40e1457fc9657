"""OpenAI chat and embedding requests -> Cohere v2 ``/v2/chat`` and ``/v2/embed`` bodies.

Field mapping (everything else the client sends is rejected or dropped by ``Provider.check_params``)::

    messages[system|developer]    role "system"; the leading run is merged into one first message
    messages[user].content        string, or text / image_url parts (image_url kept as Cohere takes it)
    messages[assistant]           content text, tool_calls passed through (arguments stay a JSON string)
    messages[tool]                role "tool" with tool_call_id and its content
    tools                         same shape; ``function.strict`` on any tool -> strict_tools: true
    tool_choice                   auto -> omitted, none -> NONE, required -> REQUIRED,
                                  {"function": {"name": X}} -> REQUIRED with only tool X sent
    temperature, seed, frequency_penalty, presence_penalty    same names
    top_p -> p;  max_completion_tokens | max_tokens -> max_tokens;  stop -> stop_sequences (a list)
    response_format               json_object -> {"type": "json_object"},
                                  json_schema -> {"type": "json_object", "json_schema": S}

Cohere-only fields a client may add (e.g. through the OpenAI SDK's ``extra_body``) pass through:
``COHERE_PASSTHROUGH``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest, UnsupportedParameter

# OpenAI fields Cohere v2 cannot honour (``n`` and ``logprobs``/``parallel_tool_calls`` are checked by value)
UNSUPPORTED = frozenset({"user", "logit_bias", "top_logprobs", "audio", "modalities", "prediction",
                         "web_search_options", "functions", "function_call"})

COHERE_PASSTHROUGH = ("k", "safety_mode", "documents", "citation_options", "thinking", "priority", "strict_tools")

TOOL_CHOICES = {"none": "NONE", "required": "REQUIRED"}


def unsupported_fields(body: dict[str, Any]) -> frozenset[str]:
    """The unsupported fields, including those that are only unsupported with some values."""
    extra = set()
    if body.get("n") not in (None, 1):
        extra.add("n")
    if body.get("logprobs"):
        extra.add("logprobs")
    if body.get("parallel_tool_calls") is False:
        extra.add("parallel_tool_calls")
    return UNSUPPORTED | extra


def chat_body(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "messages": messages(body.get("messages"))}
    tools, choice = tool_fields(body.get("tools"), body.get("tool_choice"))
    if tools is not None:
        out["tools"] = tools
        if any((t.get("function") or {}).get("strict") for t in body.get("tools") or []):
            out["strict_tools"] = True
    if choice is not None:
        out["tool_choice"] = choice
    for name in ("temperature", "seed", "frequency_penalty", "presence_penalty"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("top_p") is not None:
        out["p"] = body["top_p"]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = format_field(body.get("response_format"))
    if response_format is not None:
        out["response_format"] = response_format
    for name in COHERE_PASSTHROUGH:
        if body.get(name) is not None:
            out[name] = body[name]
    out["stream"] = stream
    return out


# -- messages ------------------------------------------------------------------------------------


def messages(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    out: list[dict[str, Any]] = []
    leading_system = True
    for i, message in enumerate(items):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"), i)
            if leading_system and out:
                out[0]["content"] += "\n\n" + text
            else:
                out.append({"role": "system", "content": text})
            continue
        leading_system = False
        if role == "user":
            out.append({"role": "user", "content": user_content(message.get("content"), i)})
        elif role == "assistant":
            out.append(assistant_message(message, i))
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": str(message.get("tool_call_id") or ""),
                        "content": tool_content(message.get("content"), i)})
        else:
            raise UnsupportedParameter(f"messages[{i}]: role '{role}' is not supported by Cohere", param="messages")
    return out


def text_of(content: Any, i: int) -> str:
    """The text of a string or a list of text parts (refusal parts are skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text") or ""))
            elif kind != "refusal":
                raise UnsupportedParameter(f"messages[{i}]: content part '{kind}' is not supported here",
                                           param="messages")
        return "".join(texts)
    raise InvalidRequest(f"messages[{i}].content must be a string or a list of parts", param="messages")


def user_content(content: Any, i: int) -> str | list[dict[str, Any]]:
    if not isinstance(content, list):
        return text_of(content, i)
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "image_url":
            image = part.get("image_url")
            image = {"url": image} if isinstance(image, str) else dict(image or {})
            if not image.get("url"):
                raise InvalidRequest(f"messages[{i}]: image_url part without a url", param="messages")
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise UnsupportedParameter(f"messages[{i}]: content part '{kind}' is not supported by Cohere",
                                       param="messages")
    return parts


def assistant_message(message: dict[str, Any], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    text = text_of(message.get("content"), i)
    calls = message.get("tool_calls")
    if text or not calls:
        out["content"] = text
    if calls:
        out["tool_calls"] = [tool_call(call) for call in calls]
    return out


def tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return {"id": str(call.get("id") or ""), "type": "function",
            "function": {"name": str(function.get("name") or ""), "arguments": arguments}}


def tool_content(content: Any, i: int) -> str | list[dict[str, Any]]:
    if isinstance(content, list):
        return [{"type": "text", "text": text_of([part], i)} for part in content]
    return text_of(content, i)


# -- tools and formats ---------------------------------------------------------------------------


def tool_fields(tools: Any, choice: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(tools, tool_choice) for Cohere; a named function choice keeps only that tool."""
    converted = None
    if tools:
        converted = [convert_tool(tool) for tool in tools]
    if choice is None or choice == "auto":
        return converted, None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise InvalidRequest(f"tool_choice '{choice}' is not valid", param="tool_choice")
        return converted, TOOL_CHOICES[choice]
    name = ((choice or {}).get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not name:
        raise InvalidRequest("tool_choice must be auto, none, required or a function", param="tool_choice")
    chosen = [tool for tool in converted or [] if tool["function"]["name"] == name]
    if not chosen:
        raise InvalidRequest(f"tool_choice names function '{name}', which is not in 'tools'", param="tool_choice")
    return chosen, "REQUIRED"


def convert_tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise UnsupportedParameter("only function tools are supported by Cohere", param="tools")
    function = tool.get("function") or {}
    if not function.get("name"):
        raise InvalidRequest("every tool needs function.name", param="tools")
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description") is not None:
        out["description"] = function["description"]
    out["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "function", "function": out}


def format_field(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "json_schema": schema} if schema else {"type": "json_object"}
    if kind in (None, "text"):
        return None
    raise UnsupportedParameter(f"response_format type '{kind}' is not supported by Cohere", param="response_format")


# -- embeddings ----------------------------------------------------------------------------------


def embed_body(body: dict[str, Any], model: str, default_input_type: str, truncate: str | None) -> dict[str, Any]:
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise UnsupportedParameter("Cohere embeddings take 'input' as a string or a list of strings "
                                   "(token arrays are not supported)", param="input")
    out: dict[str, Any] = {"model": model, "texts": texts,
                           "input_type": body.get("input_type") or default_input_type,
                           "embedding_types": ["float"]}
    if body.get("dimensions") is not None:
        out["output_dimension"] = body["dimensions"]
    if truncate:
        out["truncate"] = truncate
    return out
