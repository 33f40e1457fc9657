"""Anthropic named-event SSE stream -> OpenAI ``chat.completion.chunk`` frames.

    message_start          remembers the model and the input usage (the role chunk is sent just
                           before the first frame, so an error before any content fails cleanly)
    content_block_start    text: its initial text, if any; tool_use: the tool-call header delta
                           (index, id, type, function.name, arguments "")
    content_block_delta    text_delta -> content; input_json_delta -> arguments fragment under the
                           OpenAI tool index (counted over tool_use blocks, not Anthropic's block index);
                           thinking/signature/citations deltas are not shown
    message_delta          the finish_reason chunk; usage counts (cumulative) are updated
    message_stop           the usage chunk when the client asked for it; the stream is complete
    ping, content_block_stop, unknown events: ignored
    error                  raised as the mapped GatewayError

A stream that ends before ``message_stop`` raises ``UpstreamError`` in ``finish``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import UpstreamError
from gateway.sse import SSEEvent, encode_data
from providers.anthropic.response import finish_reason, tool_call, usage_from
from providers.base import Call, SSEStreamTranslator, UpstreamResponse, Usage, event_json, openai_chunk, usage_chunk

if TYPE_CHECKING:
    from providers.anthropic.provider import AnthropicProvider


class AnthropicStreamTranslator(SSEStreamTranslator):
    __slots__ = ("provider", "call", "done", "usage", "model", "raw_usage", "tool_index", "finish_reason", "role_sent")

    def __init__(self, provider: AnthropicProvider, call: Call) -> None:
        super().__init__()
        self.provider = provider
        self.call = call
        self.done = False
        self.usage: Usage | None = None
        self.model: str | None = None
        self.raw_usage: dict[str, Any] = {}  # Anthropic's usage counts seen so far (cumulative)
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self.finish_reason: str | None = None
        self.role_sent = False

    def _end(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(f"provider '{self.provider.config.name}' ended the stream before message_stop")
        return []

    # -- events ----------------------------------------------------------------------------------

    def _event(self, event: SSEEvent) -> list[bytes]:
        if self.done or not event.data:
            return []
        data = event_json(event.data, self.provider.config.name)
        if not isinstance(data, dict):
            return []
        kind = data.get("type") or event.event
        handler = getattr(self, "_on_" + kind, None) if isinstance(kind, str) else None
        return handler(data) if handler is not None else []

    def _on_message_start(self, data: dict[str, Any]) -> list[bytes]:
        message = data.get("message") or {}
        self.model = message.get("model") or self.model
        self._add_usage(message.get("usage"))
        return []  # the role chunk goes out with the first real frame (see _chunk)

    def _on_content_block_start(self, data: dict[str, Any]) -> list[bytes]:
        block = data.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") == "tool_use":
            index = len(self.tool_index)
            self.tool_index[data.get("index", -1)] = index
            header = tool_call({**block, "input": None}, index)
            header["function"]["arguments"] = ""
            frames = [self._chunk({"tool_calls": [header]})]
            if block.get("input"):  # a complete input given up front (no input_json_delta follows)
                frames.append(self._arguments(index, orjson.dumps(block["input"]).decode()))
            return frames
        return []

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[bytes]:
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = self.tool_index.get(data.get("index", -1))
            if index is not None:
                return [self._arguments(index, delta["partial_json"])]
        return []

    def _on_message_delta(self, data: dict[str, Any]) -> list[bytes]:
        self._add_usage(data.get("usage"))
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason is None or self.finish_reason is not None:
            return []
        self.finish_reason = finish_reason(stop_reason)
        return [self._chunk({}, self.finish_reason)]

    def _on_message_stop(self, data: dict[str, Any]) -> list[bytes]:
        self.done = True
        frames = []
        if self.finish_reason is None:  # a stream without message_delta still ends its choice
            self.finish_reason = "stop"
            frames.append(self._chunk({}, "stop"))
        if self.call.include_usage:
            frames.append(_encode(usage_chunk(self.call, self.usage or Usage(), model=self.model)))
        return frames

    def _on_error(self, data: dict[str, Any]) -> list[bytes]:
        body = orjson.dumps({"type": "error", "error": data.get("error") or {}})
        raise self.provider.map_error(UpstreamResponse(status=200, headers={}, body=body))

    # -- helpers ---------------------------------------------------------------------------------

    def _add_usage(self, raw: Any) -> None:
        if isinstance(raw, dict):
            self.raw_usage.update({k: v for k, v in raw.items() if v is not None})
            self.usage = usage_from(self.raw_usage)

    def _arguments(self, index: int, fragment: str) -> bytes:
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        frame = _encode(openai_chunk(self.call, delta, finish, model=self.model))
        if self.role_sent:
            return frame
        # the role chunk is held back until there is something to say, so an error event before any
        # content reaches the pipeline before the client's stream opens (it can still retry)
        self.role_sent = True
        return _encode(openai_chunk(self.call, {"role": "assistant", "content": ""}, model=self.model)) + frame


def _encode(chunk: dict[str, Any]) -> bytes:
    return encode_data(chunk)
