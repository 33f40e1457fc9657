"""What the fake Anthropic API rejects in a ``POST /v1/messages`` request, with the API's messages.

Each check returns ``(status, error_type, message)`` for the first problem found, or ``None``. The
checks follow the real API where it is known to reject; where the real API is lenient the fake is
stricter on purpose, so a gateway bug cannot hide behind upstream leniency (documented per check):
consecutive turns of the same role are rejected (the API merges them) and message roles other than
``user``/``assistant`` are rejected (the gateway hoists ``system``).
"""

from __future__ import annotations

import re
from typing import Any

Problem = tuple[int, str, str]

TOP_LEVEL_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "thinking", "output_config", "service_tier", "container",
    "inference_geo", "cache_control", "context_management", "mcp_servers", "diagnostics", "speed",
})
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def bad(message: str) -> Problem:
    return 400, "invalid_request_error", message


def check_headers(headers: dict[str, str], api_key: str) -> Problem | None:
    """Auth (``x-api-key``, or ``Authorization: Bearer`` as the newer SDK sends) and the version header."""
    given = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given:
        return 401, "authentication_error", "x-api-key header is required"
    if given != api_key:
        return 401, "authentication_error", "invalid x-api-key"
    version = headers.get("anthropic-version")
    if not version:
        return bad("anthropic-version: header is required")
    if not VERSION.match(version) or version < "2023-01-01":
        return bad(f"anthropic-version: invalid version {version!r}")
    return None


def check_body(body: Any, reject_temperature_with_top_p: bool = True) -> Problem | None:
    if not isinstance(body, dict):
        return bad("request body must be a JSON object")
    for name in body:
        if name not in TOP_LEVEL_FIELDS:
            return bad(f"{name}: Extra inputs are not permitted")
    for name in ("model", "messages", "max_tokens"):
        if name not in body:
            return bad(f"{name}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        return bad("model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        return bad("max_tokens: Input should be a valid integer greater than or equal to 0")
    return (_check_sampling(body, reject_temperature_with_top_p) or _check_system(body.get("system"))
            or check_messages(body["messages"]) or _check_tools(body) or _check_misc(body))


def _check_sampling(body: dict[str, Any], reject_pair: bool) -> Problem | None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not _number(value) or not 0 <= value <= 1):
            return bad(f"{name}: Input should be less than or equal to 1")
    if reject_pair and body.get("temperature") is not None and body.get("top_p") is not None:
        return bad("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        return bad("top_k: Input should be greater than or equal to 0")
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        return bad("stop_sequences: Input should be a valid list of strings")
    return None


def _check_system(system: Any) -> Problem | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return bad("system: Input should be a valid string or list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            return bad(f"system.{i}: Input tag does not match the expected tag 'text'")
        if not block.get("text"):
            return bad(f"system.{i}: text content blocks must be non-empty")
    return None


def check_messages(messages: Any) -> Problem | None:
    if not isinstance(messages, list) or not messages:
        return bad("messages: at least one message is required")
    previous: dict[str, Any] | None = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            role = message.get("role") if isinstance(message, dict) else None
            return bad(f"messages.{i}.role: Input should be 'user' or 'assistant' (got {role!r})")
        role = message["role"]
        if i == 0 and role != "user":
            return bad("messages: first message must use the \"user\" role")
        if previous is not None and previous["role"] == role:
            return bad(f"messages: roles must alternate between \"user\" and \"assistant\", but found multiple "
                       f"\"{role}\" roles in a row")
        problem = _check_content(message.get("content"), f"messages.{i}", last=i == len(messages) - 1,
                                 role=role)
        if problem is None:
            problem = _check_tool_pairing(previous or {"role": "user"}, message, i)
        if problem is not None:
            return problem
        previous = message
    if previous is not None and previous["role"] == "assistant" and _tool_use_ids(previous):
        return bad(f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks "
                   f"immediately after: {', '.join(_tool_use_ids(previous))}")
    return None


def _check_content(content: Any, where: str, last: bool, role: str) -> Problem | None:
    if isinstance(content, str):
        if not content and not (last and role == "assistant"):
            return bad(f"{where}: all messages must have non-empty content except for the optional final "
                       "assistant message")
        return None
    if not isinstance(content, list) or (not content and not (last and role == "assistant")):
        return bad(f"{where}: all messages must have non-empty content except for the optional final "
                   "assistant message")
    seen_other = False
    for j, block in enumerate(content):
        problem = _check_block(block, f"{where}.content.{j}", role)
        if problem is not None:
            return problem
        if block["type"] == "tool_result" and seen_other:
            return bad(f"{where}: tool_result blocks must come first in the content array, before any text")
        seen_other = seen_other or block["type"] != "tool_result"
    return None


def _check_block(block: Any, where: str, role: str) -> Problem | None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return None if isinstance(block.get("text"), str) and block["text"] else bad(
            f"{where}: text content blocks must be non-empty")
    if kind in ("image", "document") and role == "user":
        return _check_source(block.get("source"), where, kind)
    if kind == "tool_use" and role == "assistant":
        if not isinstance(block.get("id"), str) or not TOOL_ID.match(block["id"]):
            return bad(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
            return bad(f"{where}: tool_use blocks need 'name' and an object 'input'")
        return None
    if kind == "tool_result" and role == "user":
        if not isinstance(block.get("tool_use_id"), str) or not TOOL_ID.match(block["tool_use_id"]):
            return bad(f"{where}.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        content = block.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return bad(f"{where}.content: Input should be a valid string or list")
        return None
    if kind in ("thinking", "redacted_thinking") and role == "assistant":
        return None
    return bad(f"{where}: unexpected content block type {kind!r} in a {role} message")


def _check_source(source: Any, where: str, kind: str) -> Problem | None:
    if not isinstance(source, dict):
        return bad(f"{where}.source: Field required")
    if source.get("type") == "base64":
        allowed = IMAGE_MEDIA_TYPES if kind == "image" else {"application/pdf"}
        if source.get("media_type") not in allowed:
            return bad(f"{where}.source.media_type: Input should be one of {sorted(allowed)}")
        return None if isinstance(source.get("data"), str) and source["data"] else bad(
            f"{where}.source.data: Field required")
    if source.get("type") == "url":
        url = source.get("url")
        return None if isinstance(url, str) and url.startswith(("http://", "https://")) else bad(
            f"{where}.source.url: invalid URL")
    return bad(f"{where}.source.type: Input tag does not match 'base64' or 'url'")


def _tool_use_ids(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b["id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]


def _tool_result_ids(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b["tool_use_id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _check_tool_pairing(previous: dict[str, Any], message: dict[str, Any], i: int) -> Problem | None:
    asked = _tool_use_ids(previous) if previous["role"] == "assistant" else []
    answered = _tool_result_ids(message)
    missing = [tid for tid in asked if tid not in answered]
    if missing:
        return bad(f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                   f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                   "`tool_result` block in the next message.")
    unexpected = [tid for tid in answered if tid not in asked]
    if unexpected:
        return bad(f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                   f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding `tool_use` "
                   "block in the previous message.")
    return None


def _check_tools(body: dict[str, Any]) -> Problem | None:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            return bad("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not TOOL_NAME.match(tool["name"]):
                return bad(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return bad(f"tools.{i}.input_schema: Input should be a JSON schema with type 'object'")
            extra = set(tool) - {"name", "description", "input_schema", "strict", "cache_control", "type"}
            if extra:
                return bad(f"tools.{i}.{sorted(extra)[0]}: Extra inputs are not permitted")
            names.append(tool["name"])
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        return bad("tool_choice: Input tag does not match any of 'auto', 'any', 'tool', 'none'")
    if choice["type"] == "tool" and choice.get("name") not in names:
        return bad(f"tool_choice.name: tool {choice.get('name')!r} is not defined in tools")
    if choice["type"] == "none" and "disable_parallel_tool_use" in choice:
        return bad("tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted")
    return None


def _check_misc(body: dict[str, Any]) -> Problem | None:
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
        return bad("metadata: only 'user_id' is permitted")
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, dict) or set(config) - {"format", "effort"}:
            return bad("output_config: Extra inputs are not permitted")
        fmt = config.get("format")
        if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "json_schema"
                                or not isinstance(fmt.get("schema"), dict)):
            return bad("output_config.format: expected {'type': 'json_schema', 'schema': {...}}")
        if config.get("effort") not in (None, "low", "medium", "high", "xhigh", "max"):
            return bad("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    if "stream" in body and not isinstance(body["stream"], bool):
        return bad("stream: Input should be a valid boolean")
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
