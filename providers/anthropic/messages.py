"""OpenAI ``messages`` -> Anthropic ``system`` + ``messages``.

Anthropic takes the system prompt as a top-level field and a history of ``user``/``assistant``
turns. The translation, in order:

- ``system`` and ``developer`` messages, wherever they stand, are hoisted into ``system`` in order.
- Each other message becomes a turn made of content blocks: text and images for ``user``; text and
  ``tool_use`` blocks (arguments parsed from their JSON string) for ``assistant``; a ``tool`` message
  becomes a ``user`` turn holding one ``tool_result`` block.
- Consecutive turns of the same role are merged into one (so parallel tool results share a single
  ``user`` turn, as Anthropic requires); in a merged ``user`` turn the ``tool_result`` blocks come
  first. Empty text blocks are dropped (Anthropic rejects them) and a turn left empty disappears.
- Tool-call ids are reduced to ``[A-Za-z0-9_-]`` the same way in ``tool_use`` and ``tool_result``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.errors import InvalidRequest, UnsupportedParameter

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?:;[^,;]*?)*;base64,(?P<data>.*)$", re.DOTALL)
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")

Block = dict[str, Any]


def translate_messages(messages: Any) -> tuple[list[Block], list[dict[str, Any]]]:
    """The ``system`` blocks and the merged Anthropic turns for an OpenAI ``messages`` list."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), i))
            continue
        if role == "user":
            turn_role, blocks = "user", _user_blocks(message.get("content"), i)
        elif role == "assistant":
            turn_role, blocks = "assistant", _assistant_blocks(message, i)
        elif role == "tool":
            turn_role, blocks = "user", [_tool_result(message, i)]
        else:
            raise InvalidRequest(f"messages[{i}] has unsupported role {role!r}", param="messages")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, [_finish_turn(turn) for turn in turns]


def compact_system(blocks: list[Block]) -> str | list[Block] | None:
    """``system`` as a plain string when that loses nothing, else the list of text blocks."""
    if not blocks:
        return None
    if len(blocks) == 1 and set(blocks[0]) == {"type", "text"}:
        return blocks[0]["text"]
    return blocks


def _finish_turn(turn: dict[str, Any]) -> dict[str, Any]:
    blocks = turn["content"]
    if turn["role"] == "user":
        # tool results must open the user turn that answers the assistant's tool_use blocks
        blocks.sort(key=lambda block: block["type"] != "tool_result")
    if len(blocks) == 1 and set(blocks[0]) == {"type", "text"}:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def _text_blocks(content: Any, i: int) -> list[Block]:
    """Text blocks from a string or a list of text parts (system, developer, assistant, tool)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{i}].content must be a string or a list of parts", param="messages")
    blocks = []
    for part in content:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise UnsupportedParameter(f"messages[{i}]: content part type {kind!r} is not supported here "
                                       "by the Anthropic provider", param="messages")
        text = part.get("text") if part["type"] == "text" else part.get("refusal")
        if text:
            blocks.append(_with_cache_control({"type": "text", "text": str(text)}, part))
    return blocks


def _user_blocks(content: Any, i: int) -> list[Block]:
    if not isinstance(content, list):
        return _text_blocks(content, i)
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url":
            blocks.append(_with_cache_control(_image_block(part.get("image_url"), i), part))
        elif kind == "file":
            blocks.append(_with_cache_control(_file_block(part.get("file"), i), part))
        else:
            blocks.extend(_text_blocks([part], i))
    return blocks


def _image_block(image: Any, i: int) -> Block:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"messages[{i}]: image_url needs a 'url'", param="messages")
    if url.startswith("data:"):
        media_type, data = _parse_data_url(url, i)
        if media_type not in IMAGE_MEDIA_TYPES:
            raise InvalidRequest(f"messages[{i}]: image type {media_type!r} is not supported by Anthropic "
                                 "(use jpeg, png, gif or webp)", param="messages")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"messages[{i}]: image_url must be a data: URL or an http(s) URL", param="messages")


def _file_block(file: Any, i: int) -> Block:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise UnsupportedParameter(f"messages[{i}]: only inline PDF files (file.file_data as a data: URL) are "
                                   "supported by Anthropic", param="messages")
    media_type, data = _parse_data_url(data_url, i)
    if media_type != "application/pdf":
        raise UnsupportedParameter(f"messages[{i}]: file type {media_type!r} is not supported (PDF only)",
                                   param="messages")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _parse_data_url(url: str, i: int) -> tuple[str, str]:
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(f"messages[{i}]: expected a base64 data: URL", param="messages")
    return match["media"].lower(), match["data"]


def _assistant_blocks(message: dict[str, Any], i: int) -> list[Block]:
    blocks = _text_blocks(message.get("content"), i)
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise InvalidRequest(f"messages[{i}].tool_calls: each call needs function.name", param="messages")
        blocks.append({"type": "tool_use", "id": tool_id(call.get("id"), i),
                       "name": function["name"], "input": _arguments(function.get("arguments"), i)})
    return blocks


def _arguments(arguments: Any, i: int) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequest(f"messages[{i}].tool_calls: function.arguments is not valid JSON",
                             param="messages") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"messages[{i}].tool_calls: function.arguments must be a JSON object",
                             param="messages")
    return parsed


def _tool_result(message: dict[str, Any], i: int) -> Block:
    block: Block = {"type": "tool_result", "tool_use_id": tool_id(message.get("tool_call_id"), i)}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        texts = _text_blocks(content, i)
        if texts:
            block["content"] = texts
    return block


def tool_id(value: Any, i: int) -> str:
    """A tool-call id Anthropic accepts (``^[A-Za-z0-9_-]+$``), the same for the call and its result."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"messages[{i}]: a tool call or tool message is missing its id", param="messages")
    return _BAD_ID_CHARS.sub("_", value)


def _with_cache_control(block: Block, part: dict[str, Any]) -> Block:
    """Keep a client's Anthropic ``cache_control`` marker on a content part (prompt caching)."""
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block
