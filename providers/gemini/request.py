"""OpenAI chat request -> Gemini ``GenerateContentRequest`` (camelCase on the wire).

- ``system``/``developer`` messages -> ``systemInstruction.parts`` (in order, wherever they stand).
- ``user``/``tool`` messages -> ``user`` turns, ``assistant`` -> ``model`` turns; consecutive turns
  of the same role are merged, so parallel tool results land in one turn as Gemini requires.
- assistant ``tool_calls`` -> ``functionCall`` parts, restoring ``thoughtSignature`` and Gemini's
  call id from the tool-call id (``toolids``); ``tool`` messages -> ``functionResponse`` parts, the
  function name recovered from the assistant call with the same id.
- images: ``data:`` URLs -> ``inlineData``; other URLs -> ``fileData.fileUri`` (Gemini fetches them).
- sampling fields -> ``generationConfig``; tools -> ``functionDeclarations`` with the full JSON
  Schema in ``parametersJsonSchema``; ``tool_choice`` -> ``toolConfig.functionCallingConfig``.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from gateway.errors import InvalidRequest, UnsupportedParameter
from providers.gemini.toolids import parse_id

TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# OpenAI reasoning_effort -> Gemini 3 thinkingLevel / Gemini 2.x thinkingBudget
THINKING_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
                   "xhigh": "high"}
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
SAMPLING_FIELDS = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
                   ("n", "candidateCount"), ("presence_penalty", "presencePenalty"),
                   ("frequency_penalty", "frequencyPenalty"))


def build_body(body: dict[str, Any], model: str, safety_settings: list | None = None) -> dict[str, Any]:
    system, contents = convert_messages(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    if body.get("tools"):
        out["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in body["tools"]]}]
    if body.get("tool_choice") is not None:
        out["toolConfig"] = {"functionCallingConfig": _tool_choice(body["tool_choice"])}
    generation = generation_config(body, model)
    if generation:
        out["generationConfig"] = generation
    if safety_settings:
        out["safetySettings"] = list(safety_settings)
    return out


# -- messages -------------------------------------------------------------------------------------

class _Turns:
    """Gemini contents, merging consecutive turns of the same role."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if self.items and self.items[-1]["role"] == role:
            self.items[-1]["parts"].extend(parts)
        else:
            self.items.append({"role": role, "parts": parts})


def convert_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    system: list[dict[str, Any]] = []
    turns = _Turns()
    names: dict[str, str] = {}  # tool_call_id -> function name, from earlier assistant turns
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_parts(message.get("content"), i))
        elif role == "user":
            turns.add("user", _user_parts(message.get("content"), i))
        elif role == "assistant":
            turns.add("model", _assistant_parts(message, i, names))
        elif role in ("tool", "function"):
            turns.add("user", [_function_response(message, i, names)])
        else:
            raise InvalidRequest(f"messages[{i}].role '{role}' is not supported", param=f"messages[{i}].role")
    return system, turns.items


def _text_parts(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                raise InvalidRequest(f"messages[{i}] may only hold text parts", param=f"messages[{i}].content")
            text = part.get("text", part.get("refusal"))
            if text:
                parts.append({"text": text})
        return parts
    raise InvalidRequest(f"messages[{i}].content must be a string or a list of parts", param=f"messages[{i}].content")


def _user_parts(content: Any, i: int) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return _text_parts(content, i)
    return [p for p in (_user_part(part, i) for part in content) if p]


def _user_part(part: Any, i: int) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"text": part["text"]} if part.get("text") else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return _media(url, i, "image_url")
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        return {"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}}
    if kind == "file":
        file = part.get("file") or {}
        if file.get("file_data"):
            return _media(file["file_data"], i, "file")
        if file.get("file_id"):
            return {"fileData": {"fileUri": file["file_id"]}}
    raise InvalidRequest(f"messages[{i}] holds a content part Gemini cannot take: {kind!r}",
                         param=f"messages[{i}].content")


def _media(url: Any, i: int, kind: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"messages[{i}] has a {kind} part without a url", param=f"messages[{i}].content")
    if url.startswith("data:"):
        header, comma, data = url.partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidRequest(f"messages[{i}]: only base64 data URLs are supported", param=f"messages[{i}].content")
        return {"inlineData": {"mimeType": header[5:-7] or "application/octet-stream", "data": data}}
    file_data = {"fileUri": url}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0]
    if mime:
        file_data["mimeType"] = mime
    return {"fileData": file_data}


def _assistant_parts(message: dict[str, Any], i: int, names: dict[str, str]) -> list[dict[str, Any]]:
    parts = _text_parts(message.get("content"), i)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name = function.get("name")
        if not name or not call.get("id"):
            raise InvalidRequest(f"messages[{i}].tool_calls need an id and a function name", param=f"messages[{i}]")
        names[call["id"]] = name
        try:
            args = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise InvalidRequest(f"messages[{i}]: arguments of tool call '{call['id']}' are not a JSON object",
                                 param=f"messages[{i}].tool_calls")
        ref = parse_id(call["id"])
        function_call: dict[str, Any] = {"name": name, "args": args}
        if ref.gemini_id:
            function_call["id"] = ref.gemini_id
        part: dict[str, Any] = {"functionCall": function_call}
        if ref.signature:
            part["thoughtSignature"] = ref.signature
        parts.append(part)
    return parts


def _function_response(message: dict[str, Any], i: int, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if call_id else None
    name = name or message.get("name")
    if not name:
        raise InvalidRequest(f"messages[{i}]: tool_call_id {call_id!r} matches no earlier assistant tool call",
                             param=f"messages[{i}].tool_call_id")
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    response: Any = None
    if isinstance(content, str):
        try:
            response = orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    if not isinstance(response, dict):
        response = {"result": content if content is not None else ""}
    function_response: dict[str, Any] = {"name": name, "response": response}
    gemini_id = parse_id(call_id).gemini_id if call_id else None
    if gemini_id:
        function_response["id"] = gemini_id
    return {"functionResponse": function_response}


# -- tools ----------------------------------------------------------------------------------------

def _declaration(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not tool.get("function"):
        kind = tool.get("type") if isinstance(tool, dict) else tool
        raise UnsupportedParameter(f"tool type {kind!r} is not supported by Gemini", param="tools")
    function = tool["function"]
    declaration: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in TOOL_CHOICE_MODES:
        return {"mode": TOOL_CHOICE_MODES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise InvalidRequest(f"tool_choice {choice!r} is not valid", param="tool_choice")


# -- generationConfig -----------------------------------------------------------------------------

def generation_config(body: dict[str, Any], model: str) -> dict[str, Any]:
    config = {dst: body[src] for src, dst in SAMPLING_FIELDS if body.get(src) is not None}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    config.update(_response_format(body.get("response_format")))
    effort = body.get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = _thinking(effort, model)
    return config


def _response_format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema:
            out["responseJsonSchema"] = schema
        return out
    raise InvalidRequest(f"response_format type {kind!r} is not supported", param="response_format")


def _thinking(effort: Any, model: str) -> dict[str, Any]:
    if effort not in THINKING_BUDGETS:
        raise InvalidRequest(f"reasoning_effort {effort!r} is not valid", param="reasoning_effort")
    if model.rpartition("/")[2].startswith("gemini-3"):
        return {"thinkingLevel": THINKING_LEVELS[effort]}
    return {"thinkingBudget": THINKING_BUDGETS[effort]}
