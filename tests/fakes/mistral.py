"""A fake Mistral API (``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``), built on the
OpenAI-family fake with Mistral's rules: flat error bodies (``{"object":"error","message","type",
"param","code"}``), 422 ``{"detail":[...]}`` for fields Mistral does not know (``seed``, ``user``,
``stream_options``, ``max_completion_tokens``), tool-call ids that must be nine letters or digits (400,
code ``3280``), a last message that must be a user or tool turn, nine-character tool-call ids of its
own, and usage on the last stream chunk. ``app.state.fake.push(Reply(...))`` scripts answers, e.g. a
``model_length`` finish or content sent as a list of chunks.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette

from tests.fakes.openai_family import CREATED, Dialect
from tests.fakes.openai_family import make_app as make_family_app

TOOL_ID = re.compile(r"[A-Za-z0-9]{9}")
UNKNOWN_FIELDS = ("seed", "user", "stream_options", "max_completion_tokens")
TOOL_CHOICES = ("auto", "none", "any", "required")


def mistral_error(status: int, message: str, type_: str = "invalid_request_error", code: Any = None,
                  param: Any = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_ or "invalid_request_error", "param": param,
            "code": code}


def validate(body: dict[str, Any]) -> tuple[int, Any] | None:
    extra = [name for name in UNKNOWN_FIELDS if name in body]
    if extra:
        return 422, {"detail": [{"type": "extra_forbidden", "loc": ["body", name], "msg": "Extra inputs are not "
                                 "permitted", "input": body[name]} for name in extra]}
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in TOOL_CHOICES:
        return 422, {"detail": [{"type": "enum", "loc": ["body", "tool_choice"], "msg": "Input should be 'auto', "
                                 "'none', 'any' or 'required'", "input": choice}]}
    for message in body["messages"]:
        ids = [tc.get("id") for tc in message.get("tool_calls") or []]
        if message.get("role") == "tool":
            ids.append(message.get("tool_call_id"))
        for tool_id in ids:
            if not isinstance(tool_id, str) or not TOOL_ID.fullmatch(tool_id):
                return 400, mistral_error(400, f"Tool call id was {tool_id} but must be a-z, A-Z, 0-9, with a "
                                               "length of 9.", "invalid_function_call", "3280")
    last = body["messages"][-1]
    if last.get("role") not in ("user", "tool") and not (last.get("role") == "assistant" and last.get("prefix")):
        return 400, mistral_error(400, "Expected last role User or Tool (or Assistant with prefix True) for serving "
                                       f"but got {last.get('role')}", code="3230")
    return None


def models() -> dict[str, Any]:
    def card(model_id: str, chat: bool) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "mistralai", "type": "base",
                "capabilities": {"completion_chat": chat, "function_calling": chat, "completion_fim": False,
                                 "fine_tuning": False, "vision": False, "classification": False},
                "max_context_length": 131072, "aliases": [], "deprecation": None}

    return {"object": "list", "data": [card("mistral-large-latest", True), card("mistral-embed", False)]}


MISTRAL = Dialect("mistral", "mistralai", ("mistral-large-latest", "mistral-embed"), error_body=mistral_error,
                  stream_usage="last_chunk", validate=validate, models_body=models,
                  tool_id=lambda n: f"Tc{n:07d}")


def make_app(keys: tuple[str, ...] = ("test-key",)) -> Starlette:
    return make_family_app(MISTRAL, keys)


def mistral_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One Mistral stream chunk, for scripted streams."""
    return {"id": "cmpl-fake", "object": "chat.completion.chunk", "created": CREATED, "model": "mistral-large-latest",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
