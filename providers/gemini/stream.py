"""Gemini ``streamGenerateContent?alt=sse`` -> ``chat.completion.chunk`` frames.

Each SSE event is a whole ``GenerateContentResponse`` carrying only the new parts (CRLF framing is
handled by ``gateway.sse``). Per candidate index: the first event emits the role delta, text parts
become content deltas, each ``functionCall`` (always complete in one event) becomes a tool-call
header delta followed by one delta with all its arguments, and ``finishReason`` emits the finish
chunk. ``usageMetadata`` is cumulative: the last one seen wins.

Gemini has no terminator (the stream ends at end of body), so truncation is judged at ``finish``:
the stream is complete only if every candidate that started has sent a ``finishReason`` (or the
prompt was blocked). Otherwise ``finish`` raises ``UpstreamError``. A ``{"error": ...}`` event is
mapped through the provider's ``map_error`` and raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import GatewayError, UpstreamError
from gateway.sse import SSEEvent, encode_data
from providers.base import Call, SSEStreamTranslator, UpstreamResponse, Usage, event_json, openai_chunk, usage_chunk
from providers.gemini.response import blocked, finish_reason, parts_of, tool_call, usage_from, visible_text

if TYPE_CHECKING:
    from providers.gemini import GeminiProvider


class GeminiStreamTranslator(SSEStreamTranslator):
    __slots__ = ("provider", "call", "started", "finished", "calls", "tool_count", "usage", "model")

    def __init__(self, provider: GeminiProvider, call: Call) -> None:
        super().__init__()
        self.provider = provider
        self.call = call
        self.started: set[int] = set()  # candidate indexes that sent their role delta
        self.finished: set[int] = set()  # candidate indexes that sent a finishReason
        self.calls: dict[int, int] = {}  # tool calls per candidate index (the delta ``index``)
        self.tool_count = 0  # tool calls in the whole response (for deterministic ids)
        self.usage: Usage | None = None
        self.model: str | None = None

    def _end(self) -> list[bytes]:
        if not self.finished or not self.started <= self.finished:
            raise UpstreamError(f"provider '{self.provider.config.name}' ended the stream before a finishReason")
        if self.call.include_usage:
            return [encode_data(usage_chunk(self.call, self.usage or Usage(), self.model))]
        return []

    def _event(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if not data.strip():
            return []
        chunk = event_json(data, self.provider.config.name)
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk and "candidates" not in chunk:
            raise self._error(chunk["error"])
        self.model = self.model or chunk.get("modelVersion")
        self.usage = usage_from(chunk.get("usageMetadata")) or self.usage
        if blocked(chunk):
            return self._blocked()
        frames: list[bytes] = []
        for position, candidate in enumerate(c for c in chunk.get("candidates") or [] if isinstance(c, dict)):
            frames.extend(self._candidate(int(candidate.get("index", position)), candidate))
        return frames

    def _candidate(self, index: int, candidate: dict[str, Any]) -> list[bytes]:
        frames = self._start(index)
        for part in parts_of(candidate):
            text = visible_text(part)
            if text:
                frames.append(self._frame({"content": text}, index))
            elif (tc := tool_call(self.call, part, self.tool_count)) is not None:
                self.tool_count += 1
                position = self.calls.get(index, 0)
                self.calls[index] = position + 1
                header = {"index": position, "id": tc["id"], "type": "function",
                          "function": {"name": tc["function"]["name"], "arguments": ""}}
                frames.append(self._frame({"tool_calls": [header]}, index))
                arguments = {"index": position, "function": {"arguments": tc["function"]["arguments"]}}
                frames.append(self._frame({"tool_calls": [arguments]}, index))
        reason = candidate.get("finishReason")
        if reason and index not in self.finished:
            self.finished.add(index)
            frames.append(self._frame({}, index, finish_reason(reason, index in self.calls)))
        return frames

    def _blocked(self) -> list[bytes]:
        """The prompt was refused (no candidates): one empty choice ending in content_filter."""
        frames = self._start(0)
        if 0 not in self.finished:
            self.finished.add(0)
            frames.append(self._frame({}, 0, "content_filter"))
        return frames

    def _start(self, index: int) -> list[bytes]:
        if index in self.started:
            return []
        self.started.add(index)
        return [self._frame({"role": "assistant", "content": ""}, index)]

    def _frame(self, delta: dict[str, Any], index: int, reason: str | None = None) -> bytes:
        return encode_data(openai_chunk(self.call, delta, reason, index=index, model=self.model))

    def _error(self, error: Any) -> GatewayError:
        error = error if isinstance(error, dict) else {"message": str(error)}
        status = error.get("code") if isinstance(error.get("code"), int) else 500
        body = orjson.dumps({"error": error})
        return self.provider.map_error(UpstreamResponse(status=status, headers={}, body=body))
