"""The repairs that make an almost-OpenAI answer an OpenAI one, and the reading of every error body
OpenAI-compatible servers send; shared by the dialect providers (``providers/openai_dialect.py``) and
their stream translator (``providers/dialect_stream.py``)."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from providers.base import Call, UpstreamResponse

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


def drop_null_fingerprint(obj: dict[str, Any]) -> bool:
    """OpenAI's schema types ``system_fingerprint`` as a string: omit a null one rather than send it."""
    if "system_fingerprint" in obj and obj["system_fingerprint"] is None:
        del obj["system_fingerprint"]
        return True
    return False


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
