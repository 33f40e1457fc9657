"""OpenAI chat requests -> a Replicate prediction ``input``.

Replicate models each have their own input schema, so the mapping is configurable (see
docs/providers/replicate.md). With the default ``input_style: prompt``::

    system / developer messages     system_prompt (joined with blank lines)
    one user message                prompt = its text
    several turns                   prompt = "User: ...\\n\\nAssistant: ...\\n\\nUser: ...\\n\\nAssistant:"
    max_completion_tokens | max_tokens   input[<max_tokens_field>]  (max_tokens, or e.g. max_new_tokens)
    temperature, top_p, seed, presence_penalty, frequency_penalty      same names
    stop                            stop_sequences, a comma-separated string
    image_url parts                 input[<image_field>] (a list of URLs, or one URL when image_list
                                    is false); rejected when no image_field is configured

``input_style: messages`` sends ``messages: [{role, content}]`` (text only) instead of ``prompt``.
``input_defaults`` is merged under the mapped input (mapped fields win).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter

UNSUPPORTED = frozenset({"tools", "tool_choice", "functions", "function_call", "logit_bias", "top_logprobs",
                         "user", "audio", "modalities", "prediction", "web_search_options", "parallel_tool_calls"})
SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
_MODEL = re.compile(r"^([\w.-]+)/([\w.-]+)(?::([0-9a-fA-F]{8,}))?$")


def unsupported_fields(body: Mapping[str, Any]) -> frozenset[str]:
    extra = set()
    if body.get("n") not in (None, 1):
        extra.add("n")
    if body.get("logprobs"):
        extra.add("logprobs")
    if (body.get("response_format") or {}).get("type", "text") != "text":
        extra.add("response_format")
    return UNSUPPORTED | extra


def parse_model(model: str) -> tuple[str, str, str | None]:
    """``owner/name`` or ``owner/name:version`` -> (owner, name, version or None)."""
    match = _MODEL.match(model or "")
    if not match:
        raise InvalidRequest(f"Replicate model '{model}' must be 'owner/name' or 'owner/name:version'",
                             param="model")
    return match.group(1), match.group(2), match.group(3)


def build_input(body: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    system, turns, images = split_messages(body.get("messages"))
    mapped: dict[str, Any] = {}
    if options.get("input_style") == "messages":
        mapped["messages"] = [{"role": role, "content": text} for role, text in turns]
    else:
        mapped["prompt"] = render_prompt(turns)
    if system:
        mapped["system_prompt"] = system
    if images:
        mapped.update(image_input(images, options))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        mapped[options.get("max_tokens_field") or "max_tokens"] = max_tokens
    for name in SAMPLING:
        if body.get(name) is not None:
            mapped[name] = body[name]
    stop = body.get("stop")
    if stop:
        mapped["stop_sequences"] = stop if isinstance(stop, str) else ",".join(stop)
    return {**(options.get("input_defaults") or {}), **mapped}


def split_messages(messages: Any) -> tuple[str, list[tuple[str, str]], list[str]]:
    """(system text, [(role, text)] for the other turns, image URLs)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    images: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param="messages")
        role = message.get("role")
        if role == "tool" or message.get("tool_calls"):
            raise UnsupportedParameter("tool calls are not supported by Replicate", param="messages")
        if role not in ("system", "developer", "user", "assistant"):
            raise UnsupportedParameter(f"messages[{i}]: role '{role}' is not supported by Replicate",
                                       param="messages")
        text = content_text(message.get("content"), i, images if role == "user" else None)
        if role in ("system", "developer"):
            system.append(text)
        else:
            turns.append((role, text))
    if not turns:
        raise InvalidRequest("Replicate needs at least one user message", param="messages")
    return "\n\n".join(system), turns, images


def content_text(content: Any, i: int, images: list[str] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{i}].content must be a string or a list of parts", param="messages")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url" and images is not None:
            image = part.get("image_url")
            url = image if isinstance(image, str) else (image or {}).get("url")
            if not url:
                raise InvalidRequest(f"messages[{i}]: image_url part without a url", param="messages")
            images.append(url)
        elif kind != "refusal":
            raise UnsupportedParameter(f"messages[{i}]: content part '{kind}' is not supported by Replicate",
                                       param="messages")
    return "".join(texts)


def render_prompt(turns: list[tuple[str, str]]) -> str:
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    lines = [f"{'User' if role == 'user' else 'Assistant'}: {text}" for role, text in turns]
    if turns[-1][0] == "user":
        lines.append("Assistant:")
    return "\n\n".join(lines)


def image_input(images: list[str], options: Mapping[str, Any]) -> dict[str, Any]:
    field = options.get("image_field")
    if not field:
        raise UnsupportedParameter("image inputs need the provider option 'image_field' (the model's image "
                                   "input name) for Replicate", param="messages")
    if options.get("image_list", True):
        return {field: images}
    if len(images) > 1:
        raise UnsupportedParameter("this Replicate model takes one image (image_list: false)", param="messages")
    return {field: images[0]}


def prompt_text(body: Mapping[str, Any]) -> str:
    """All the prompt text the model reads, for usage estimates (never raises)."""
    parts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n\n".join(parts)
