"""Replicate's prediction stream (``GET urls.stream``) -> OpenAI ``chat.completion.chunk`` frames.

    event: output   plain text (multi-line data joined with "\\n") -> a content delta
    event: logs     ignored
    event: error    {"detail": ...} -> an error
    event: done     {} -> the finish chunk ("stop") and, when asked for, the usage chunk;
                    {"reason": "canceled" | "error"} -> an error

The stream carries no token counts, so usage is always estimated (4 characters a token) and the usage
chunk says ``"estimated": true``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.sse import SSEEvent, encode_data
from providers.base import Call, SSEStreamTranslator, Usage, openai_chunk, usage_chunk
from providers.replicate.request import prompt_text
from providers.replicate.response import estimate_tokens, openai_usage, prediction_error


class ReplicateStreamTranslator(SSEStreamTranslator):
    __slots__ = ("call", "provider_name", "started", "done", "chars", "usage", "model")

    def __init__(self, call: Call, provider_name: str) -> None:
        super().__init__()
        self.call = call
        self.provider_name = provider_name
        self.started = False
        self.done = False
        self.chars = 0
        self.usage: Usage | None = None
        self.model: str | None = call.model

    def _end(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(f"provider '{self.provider_name}' ended the stream before its done event")
        return []

    def _event(self, event: SSEEvent) -> list[bytes]:
        if self.done:
            return []
        if event.event == "output":
            frames = self._start()
            if event.data:
                self.chars += len(event.data)
                frames.append(self._chunk({"content": event.data}))
            return frames
        if event.event == "error":
            raise prediction_error("failed", detail(event.data), self.provider_name)
        if event.event == "done":
            return self._done(event.data)
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return encode_data(openai_chunk(self.call, delta, finish, model=self.model))

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _done(self, data: str) -> list[bytes]:
        try:
            payload = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            payload = {}
        reason = payload.get("reason") if isinstance(payload, dict) else None
        if reason == "canceled":
            raise prediction_error("canceled", None, self.provider_name)
        if reason == "error":
            raise prediction_error("failed", payload.get("error") or payload.get("detail"), self.provider_name)
        frames = self._start()
        self.done = True
        self.usage = Usage(prompt_tokens=estimate_tokens(prompt_text(self.call.body)),
                           completion_tokens=(self.chars + 3) // 4, estimated=True)
        frames.append(self._chunk({}, "stop"))
        if self.call.include_usage:
            chunk = usage_chunk(self.call, self.usage, model=self.model)
            chunk["usage"] = openai_usage(self.usage)
            frames.append(encode_data(chunk))
        return frames


def detail(data: str) -> str:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if isinstance(payload, dict):
        return str(payload.get("detail") or payload.get("error") or payload.get("title") or data)
    return data
