"""Cohere v2 chat stream -> OpenAI ``chat.completion.chunk`` frames.

Cohere sends named SSE events whose ``data`` JSON carries the same ``type``::

    message-start     -> the role chunk
    content-delta     -> a content delta (``content.thinking`` -> a reasoning_content delta)
    tool-call-start   -> a tool-call header delta (index, id, type, name, arguments "")
    tool-call-delta   -> an arguments fragment; ``delta.message.tool_calls`` is an object, not a list
    message-end       -> the finish chunk and, when asked for, the usage chunk (the terminator)

``content-start`` / ``-end``, ``tool-plan-delta``, ``tool-call-end``, ``citation-*`` and ``debug``
carry nothing the client needs. ``message-end`` with finish_reason ERROR raises an error.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import UpstreamError
from gateway.sse import SSEEvent, encode_data
from providers.base import Call, SSEStreamTranslator, Usage, event_json, openai_chunk, usage_chunk
from providers.cohere.response import finish_reason, usage_of


class CohereStreamTranslator(SSEStreamTranslator):
    __slots__ = ("call", "provider_name", "started", "done", "tools", "usage", "model")

    def __init__(self, call: Call, provider_name: str) -> None:
        super().__init__()
        self.call = call
        self.provider_name = provider_name
        self.started = False
        self.done = False
        self.tools: dict[int, int] = {}  # Cohere tool-call index -> OpenAI tool_calls index
        self.usage: Usage | None = None
        self.model: str | None = call.model

    def _end(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(f"provider '{self.provider_name}' ended the stream before message-end")
        return []

    # -- events ---------------------------------------------------------------------------------

    def _event(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if not data or data == "[DONE]" or self.done:
            return []
        payload = event_json(data, self.provider_name)
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type") or event.event
        message = ((payload.get("delta") or {}).get("message") or {})
        if kind == "message-start":
            return self._start()
        if kind in ("content-start", "content-delta"):
            return self._content(message.get("content") or {})
        if kind == "tool-call-start":
            return self._tool_start(payload.get("index"), message.get("tool_calls") or {})
        if kind == "tool-call-delta":
            return self._tool_delta(payload.get("index"), message.get("tool_calls") or {})
        if kind == "message-end":
            return self._message_end(payload.get("delta") or {})
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return encode_data(openai_chunk(self.call, delta, finish, model=self.model))

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _content(self, content: dict[str, Any]) -> list[bytes]:
        frames = self._start()
        if content.get("text"):
            frames.append(self._chunk({"content": content["text"]}))
        if content.get("thinking"):
            frames.append(self._chunk({"reasoning_content": content["thinking"]}))
        return frames

    def _tool_index(self, index: Any) -> int:
        key = index if isinstance(index, int) else len(self.tools)
        if key not in self.tools:
            self.tools[key] = len(self.tools)
        return self.tools[key]

    def _tool_start(self, index: Any, call: dict[str, Any]) -> list[bytes]:
        frames = self._start()
        position = self._tool_index(index)
        function = call.get("function") or {}
        frames.append(self._chunk({"tool_calls": [{
            "index": position, "id": str(call.get("id") or f"call_{self.call.request_id}_{position}"),
            "type": "function", "function": {"name": str(function.get("name") or ""), "arguments": ""}}]}))
        if function.get("arguments"):
            frames.append(self._arguments(position, function["arguments"]))
        return frames

    def _tool_delta(self, index: Any, call: dict[str, Any]) -> list[bytes]:
        fragment = (call.get("function") or {}).get("arguments")
        if not fragment:
            return []
        key = index if isinstance(index, int) else max(self.tools, default=0)
        if key not in self.tools:
            raise UpstreamError(f"provider '{self.provider_name}' sent tool-call arguments before tool-call-start")
        return self._start() + [self._arguments(self.tools[key], fragment)]

    def _arguments(self, position: int, fragment: str) -> bytes:
        return self._chunk({"tool_calls": [{"index": position, "function": {"arguments": fragment}}]})

    def _message_end(self, delta: dict[str, Any]) -> list[bytes]:
        reason = finish_reason(delta.get("finish_reason"), delta.get("error"))
        frames = self._start()
        self.usage = usage_of(delta.get("usage")) or Usage()
        if self.tools:
            reason = "tool_calls"
        self.done = True
        frames.append(self._chunk({}, reason))
        if self.call.include_usage:
            frames.append(encode_data(usage_chunk(self.call, self.usage, model=self.model)))
        return frames
