"""The ``mock`` provider: a deterministic in-process vendor for demos, load tests and CI.

It answers in OpenAI's wire format without a socket (``gateway.upstream.LocalClient`` calls
``serve``), so the whole pipeline, translation included, runs exactly as for a real vendor. YAML keys:

- ``response``: the assistant text (default: echo the last user message)
- ``latency_ms``: delay before the first byte
- ``tokens_per_second``: pace of streamed tokens (0: as fast as possible)
- ``chunks``: number of content chunks a stream is cut into (default: one per token)
- ``error_status`` / ``error_rate``: answer this HTTP status for this share of requests (1.0: all),
  spread evenly and deterministically (request i fails when floor(i*rate) grows)
- ``retry_after``: seconds sent as ``Retry-After`` with errors
- ``embedding_dimensions``: default length of embedding vectors (``dimensions`` in a request wins)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import time
from array import array
from collections.abc import AsyncIterator
from typing import Any

import orjson

from providers.base import Capabilities, OptionSpec, UpstreamRequest, UpstreamResponse
from providers.openai_compat import OpenAICompatProvider

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    """Cut text into token-ish pieces that join back to the exact text."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class _LocalStream:
    """What ``serve`` returns: the shape of ``gateway.upstream.UpstreamStream``."""

    def __init__(self, status: int, headers: dict[str, str], pieces: list[bytes], delays: list[float]) -> None:
        self.status = status
        self.headers = headers
        self._pieces = pieces
        self._delays = delays
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece, delay in zip(self._pieces, self._delays):
            if delay:
                await asyncio.sleep(delay)
            if self.closed:
                return
            yield piece

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.chunks()])

    def close(self) -> None:
        self.closed = True


class MockProvider(OpenAICompatProvider):
    type_name = "mock"
    default_api_base = "mock://local"
    capabilities = Capabilities(chat=True, embeddings=True, tools=False, vision=True, json_mode=False)
    options = {
        "response": OptionSpec(str, None, "assistant text; default echoes the last user message"),
        "latency_ms": OptionSpec(float, 0.0, "delay before the first byte"),
        "tokens_per_second": OptionSpec(float, 0.0, "stream pace; 0 = unpaced"),
        "chunks": OptionSpec(int, None, "content chunks per stream; default one per token"),
        "error_status": OptionSpec(int, None, "HTTP status to fail with"),
        "error_rate": OptionSpec(float, 1.0, "share of requests that fail when error_status is set"),
        "retry_after": OptionSpec(float, None, "Retry-After seconds sent with errors"),
        "embedding_dimensions": OptionSpec(int, 256, "default embedding length"),
    }

    def __init__(self, config) -> None:
        super().__init__(config)
        self._served = 0

    def auth_headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    # -- the simulated vendor ---------------------------------------------------------------------

    async def serve(self, request: UpstreamRequest) -> _LocalStream:
        option = self.config.option
        latency = (option("latency_ms") or 0) / 1000
        error = self._error()
        if error is not None:
            return _LocalStream(error.status, dict(error.headers), [error.body], [latency])
        if request.method == "GET":
            body = {"object": "list", "data": [{"id": "mock-chat", "object": "model", "created": 0, "owned_by": "mock"},
                                               {"id": "mock-embedding", "object": "model", "created": 0, "owned_by": "mock"}]}
            return _LocalStream(200, {"content-type": "application/json"}, [orjson.dumps(body)], [latency])
        body = orjson.loads(request.body or b"{}")
        if request.url.endswith("/embeddings"):
            return _LocalStream(200, {"content-type": "application/json"}, [orjson.dumps(self._embeddings(body))], [latency])
        text = option("response")
        if text is None:
            users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
            text = message_text(users[-1]) if users else ""
        prompt_tokens = sum(count_tokens(message_text(m)) for m in body.get("messages", []) if isinstance(m, dict))
        if body.get("stream"):
            return self._stream(body, text, prompt_tokens, latency)
        completion = {
            "id": f"chatcmpl-mock{self._served}", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": i, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"} for i in range(int(body.get("n") or 1))],
            "usage": _usage(prompt_tokens, count_tokens(text) * int(body.get("n") or 1)),
            "system_fingerprint": "fp_mock",
        }
        return _LocalStream(200, {"content-type": "application/json"}, [orjson.dumps(completion)], [latency])

    def _error(self) -> UpstreamResponse | None:
        status = self.config.option("error_status")
        self._served += 1
        if not status:
            return None
        rate = self.config.option("error_rate")
        if math.floor(self._served * rate) == math.floor((self._served - 1) * rate):
            return None
        headers = {"content-type": "application/json"}
        if self.config.option("retry_after") is not None:
            headers["retry-after"] = str(int(self.config.option("retry_after")))
        kind = "rate_limit_exceeded" if status == 429 else ("server_error" if status >= 500 else "invalid_request_error")
        body = orjson.dumps({"error": {"message": f"mock provider error {status}", "type": kind, "param": None,
                                       "code": kind if status == 429 else None}})
        return UpstreamResponse(status=status, headers=headers, body=body)

    def _stream(self, body: dict[str, Any], text: str, prompt_tokens: int, latency: float) -> _LocalStream:
        tokens = split_tokens(text)
        pieces = _group(tokens, self.config.option("chunks"))
        pace = self.config.option("tokens_per_second") or 0
        base = {"id": f"chatcmpl-mock{self._served}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model"), "system_fingerprint": "fp_mock"}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        extra = {"usage": None} if include_usage else {}

        def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        frames = [frame({"role": "assistant", "content": ""})]
        delays = [latency]
        for piece in pieces:
            frames.append(frame({"content": "".join(piece)}))
            delays.append(len(piece) / pace if pace else 0.0)
        frames.append(frame({}, "stop"))
        delays.append(0.0)
        if include_usage:
            usage_chunk = {**base, "choices": [], "usage": _usage(prompt_tokens, count_tokens(text))}
            frames.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
            delays.append(0.0)
        frames.append(b"data: [DONE]\n\n")
        delays.append(0.0)
        return _LocalStream(200, {"content-type": "text/event-stream"}, frames, delays)

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) and not all(isinstance(i, int) for i in inputs) else [inputs]
        dims = int(body.get("dimensions") or self.config.option("embedding_dimensions") or 256)
        data = []
        tokens = 0
        for index, item in enumerate(items):
            text = item if isinstance(item, str) else " ".join(map(str, item or []))
            tokens += count_tokens(text) if isinstance(item, str) else len(item or [])
            vector = embed(text, dims)
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(array("f", vector).tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return {"object": "list", "data": data, "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def embed(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [((v % 20001) - 10000) / 10000 for v in struct.unpack(f"<{dims}I", raw[:dims * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


def _group(tokens: list[str], chunks: int | None) -> list[list[str]]:
    if not chunks or chunks >= len(tokens):
        return [[t] for t in tokens]
    size = math.ceil(len(tokens) / chunks)
    return [tokens[i:i + size] for i in range(0, len(tokens), size)]
