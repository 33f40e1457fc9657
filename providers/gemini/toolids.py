"""Tool-call ids: what the client sees, and what they carry back to Gemini.

Gemini 3 rejects a follow-up turn unless every ``functionCall`` part it issued comes back with its
``thoughtSignature`` unchanged, and some models give a call an ``id`` that the answer should echo.
OpenAI clients keep nothing of a tool call but its ``id``, ``name`` and ``arguments``, so both ride
inside the id::

    call_<request>_<n>[__id_<hex of Gemini's id>][__ts_<form><base64url>]

The signature is base64 on the wire: form ``b`` carries its decoded bytes (restored exactly because
only canonical base64 takes this form), form ``t`` carries the text itself (anything else). The base
is deterministic from the call (golden files stay stable). Only ``[A-Za-z0-9_-]`` is used,
so the id is also valid for vendors that restrict ids (Anthropic) should a conversation move there.
Ids the gateway did not make (another vendor's ``call_abc``) decode to no id and no signature.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gateway.errors import InvalidRequest
from providers.base import Call

SIGNATURE_MARK = "__ts_"
GEMINI_ID_MARK = "__id_"


@dataclass(frozen=True, slots=True)
class ToolCallRef:
    gemini_id: str | None = None
    signature: str | None = None


def make_id(call: Call, n: int, gemini_id: str | None = None, signature: str | None = None) -> str:
    """The OpenAI tool-call id of the ``n``-th function call of this response."""
    tool_id = f"call_{call.completion_id.removeprefix('chatcmpl-')}_{n}"
    if gemini_id:
        tool_id += GEMINI_ID_MARK + gemini_id.encode().hex()
    if signature:
        tool_id += SIGNATURE_MARK + _encode_signature(signature)
    return tool_id


def _encode_signature(signature: str) -> str:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is not None and base64.b64encode(raw).decode() == signature:
        return "b" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return "t" + base64.urlsafe_b64encode(signature.encode()).decode().rstrip("=")


def parse_id(tool_id: str) -> ToolCallRef:
    """What an id made by ``make_id`` carries (nothing for ids made elsewhere)."""
    head, marked, encoded = tool_id.partition(SIGNATURE_MARK)
    signature = _unb64(tool_id, encoded) if marked else None
    _, marked, hexed = head.partition(GEMINI_ID_MARK)
    gemini_id = None
    if marked:
        try:
            gemini_id = bytes.fromhex(hexed).decode()
        except (ValueError, UnicodeDecodeError):
            raise _altered(tool_id) from None
    return ToolCallRef(gemini_id=gemini_id, signature=signature)


def _unb64(tool_id: str, encoded: str) -> str:
    form, data = encoded[:1], encoded[1:]
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        if form == "b":
            return base64.b64encode(raw).decode()
        if form == "t":
            return raw.decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    raise _altered(tool_id)


def _altered(tool_id: str) -> InvalidRequest:
    return InvalidRequest(f"tool call id '{tool_id[:80]}' was altered: send ids back exactly as received",
                          param="messages")
