"""The text of a request, as policies and token estimates see it.

``text_slots(body, endpoint)`` lists every place that holds request text: each message's ``content``
(a string, or the ``text`` of its text parts) for every role, system and tool messages included,
the ``arguments`` of assistant tool calls, and the embeddings ``input`` strings. A slot is a
``(container, key)`` pair, so a redaction writes back in place; ``editable_copy`` first copies the
containers along those paths so the client's body is never changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Slot = tuple[Any, Any]  # container[key] is a str

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # role and framing overhead per message
DEFAULT_COMPLETION_RESERVE = 256  # reserved for the answer when the request sets no max_tokens


def text_slots(body: dict[str, Any], endpoint: str) -> Iterator[Slot]:
    if endpoint == "embeddings":
        value = body.get("input")
        if isinstance(value, str):
            yield body, "input"
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield value, index
        return
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                yield function, "arguments"


def editable_copy(body: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """A copy of ``body`` whose text-holding containers are new objects (everything else shared)."""
    out = dict(body)
    if endpoint == "embeddings":
        if isinstance(out.get("input"), list):
            out["input"] = list(out["input"])
        return out
    messages = []
    for message in out.get("messages") or ():
        if isinstance(message, dict):
            message = dict(message)
            if isinstance(message.get("content"), list):
                message["content"] = [dict(p) if isinstance(p, dict) else p for p in message["content"]]
            if isinstance(message.get("tool_calls"), list):
                message["tool_calls"] = [_copy_call(c) for c in message["tool_calls"]]
        messages.append(message)
    out["messages"] = messages
    return out


def _copy_call(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    call = dict(call)
    if isinstance(call.get("function"), dict):
        call["function"] = dict(call["function"])
    return call


def estimate_prompt_tokens(body: dict[str, Any], endpoint: str) -> int:
    """A token count from characters (about four a token) plus per-message overhead."""
    chars = sum(len(container[key]) for container, key in text_slots(body, endpoint))
    tokens = -(-chars // CHARS_PER_TOKEN)
    if endpoint != "embeddings":
        tokens += TOKENS_PER_MESSAGE * len(body.get("messages") or ())
        if body.get("tools"):
            tokens += -(-len(str(body["tools"])) // CHARS_PER_TOKEN)
    elif isinstance(body.get("input"), list):
        tokens += sum(len(v) for v in body["input"] if isinstance(v, list))  # token arrays count as given
    return max(1, tokens)


def completion_allowance(body: dict[str, Any], endpoint: str) -> int:
    """The most completion tokens the request may produce (its max_tokens times n), or a default."""
    if endpoint == "embeddings":
        return 0
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    n = body.get("n") if isinstance(body.get("n"), int) and body.get("n", 0) > 0 else 1
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        limit = DEFAULT_COMPLETION_RESERVE
    return limit * n
