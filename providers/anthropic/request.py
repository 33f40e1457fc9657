"""OpenAI chat request body -> Anthropic ``POST /v1/messages`` body.

Every OpenAI field is either translated, dropped as a no-op, or reported as unsupported (400
``unsupported_parameter``, or dropped with ``drop_unsupported_params``). Fields this module does not
know are passed through untouched, so Anthropic-only fields (``top_k``, ``thinking``, ``container``,
...) can be sent with the openai SDK's ``extra_body``.

Decisions (see docs/providers/anthropic.md):
- ``temperature`` is clamped from OpenAI's 0-2 to Anthropic's 0-1.
- ``temperature`` with ``top_p``: newer models reject the pair, so only ``temperature`` is sent unless
  the option ``allow_temperature_with_top_p`` is true.
- ``max_tokens`` is required by Anthropic: ``max_completion_tokens``, else ``max_tokens``, else the
  option ``default_max_tokens``.
- ``response_format`` json_schema -> ``output_config.format``; json_object has no native field and is
  emulated with a system instruction (option ``emulate_json_object``, default true) or refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter
from providers.anthropic.messages import compact_system, translate_messages
from providers.openai_compat import FORBIDDEN_FIELDS

JSON_OBJECT_INSTRUCTION = ("Respond with a single valid JSON object and nothing else: no prose, "
                           "no Markdown code fences.")

# OpenAI fields with no Anthropic equivalent (reported unless their value is a no-op, see _is_noop)
UNSUPPORTED = frozenset({
    "n", "logprobs", "top_logprobs", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
    "audio", "modalities", "prediction", "web_search_options", "functions", "function_call",
    "store", "metadata", "verbosity", "service_tier",
})

# OpenAI fields this module consumes (never passed through as they are)
HANDLED = frozenset({
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "tools", "tool_choice", "parallel_tool_calls", "response_format",
    "user", "safety_identifier", "reasoning_effort", "prompt_cache_key",
}) | FORBIDDEN_FIELDS

REASONING_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh",
                    "max": "max"}


@dataclass(frozen=True, slots=True)
class RequestOptions:
    default_max_tokens: int = 4096
    allow_temperature_with_top_p: bool = False
    emulate_json_object: bool = True


def meaningful_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The body without unsupported fields whose value changes nothing (``n: 1``, ``logprobs: false``)."""
    return {k: v for k, v in body.items() if not (k in UNSUPPORTED and _is_noop(k, v))}


def _is_noop(name: str, value: Any) -> bool:
    if value is None:
        return True
    if name == "n":
        return value == 1
    if name in ("logprobs", "store"):
        return value is False
    if name in ("presence_penalty", "frequency_penalty"):
        return value == 0
    if name in ("logit_bias", "metadata"):
        return value == {}
    if name == "modalities":
        return value == ["text"]
    if name == "service_tier":
        return value in ("auto", "default")
    return False


def build_body(body: dict[str, Any], model: str, stream: bool, options: RequestOptions) -> dict[str, Any]:
    """The Anthropic request body for an OpenAI body already cleared by ``check_params``."""
    system, messages = translate_messages(body.get("messages"))
    output_config = _response_format(body.get("response_format"), system, options)
    out: dict[str, Any] = {"model": model}
    if (value := compact_system(system)) is not None:
        out["system"] = value
    out["messages"] = messages
    out["max_tokens"] = _max_tokens(body, options)
    if output_config:
        out["output_config"] = output_config
    _sampling(body, out, options)
    if stop := body.get("stop"):
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    _tools(body, out)
    user = body.get("user") or body.get("safety_identifier")
    if user:
        out["metadata"] = {"user_id": str(user)}
    if (effort := body.get("reasoning_effort")) is not None and effort != "none":
        if effort not in REASONING_EFFORT:
            raise InvalidRequest(f"unknown reasoning_effort {effort!r}", param="reasoning_effort")
        out.setdefault("output_config", {})["effort"] = REASONING_EFFORT[effort]
    if stream:
        out["stream"] = True
    for name, value in body.items():  # Anthropic-only fields sent through extra_body
        if name not in HANDLED and name not in UNSUPPORTED:
            if name == "output_config" and isinstance(value, dict):
                out["output_config"] = {**value, **out.get("output_config", {})}
            else:
                out.setdefault(name, value)
    return out


def _max_tokens(body: dict[str, Any], options: RequestOptions) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidRequest(f"'{name}' must be a non-negative integer", param=name)
            return value
    return options.default_max_tokens


def _sampling(body: dict[str, Any], out: dict[str, Any], options: RequestOptions) -> None:
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
            raise InvalidRequest("'temperature' must be a number", param="temperature")
        out["temperature"] = min(1.0, max(0.0, float(temperature)))
    if top_p is not None and (temperature is None or options.allow_temperature_with_top_p):
        out["top_p"] = top_p


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if not tools:
        return
    out["tools"] = [_tool(tool) for tool in tools]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        raise UnsupportedParameter(f"tool type {kind!r} is not supported by the Anthropic provider "
                                   "(function tools only)", param="tools")
    function = tool.get("function") or {}
    if not function.get("name"):
        raise InvalidRequest("each tool needs function.name", param="tools")
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is not None:
        out["strict"] = bool(function["strict"])
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    raise UnsupportedParameter(f"tool_choice {choice!r} is not supported by the Anthropic provider",
                               param="tool_choice")


def _response_format(fmt: Any, system: list[dict[str, Any]], options: RequestOptions) -> dict[str, Any] | None:
    """``output_config`` for a json_schema format; json_object adds its instruction to ``system``."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object", param="response_format")
        return {"format": {"type": "json_schema", "schema": schema}}
    if kind == "json_object" and options.emulate_json_object:
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
        return None
    if kind == "json_object":
        raise UnsupportedParameter("response_format json_object is not supported by the Anthropic provider "
                                   "(use json_schema)", param="response_format")
    raise UnsupportedParameter(f"response_format type {kind!r} is not supported", param="response_format")
