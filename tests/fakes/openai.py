"""A strict fake of OpenAI's API (chat completions with SSE, embeddings, models) on a real socket.

It checks what it receives (bearer key, JSON body, required fields), records every request, and
lets a test script the next answers: an error with status/body/headers, a stall, a stream cut off
after N chunks, or tool calls. Its answers follow OpenAI's wire format exactly (checked by the
official ``openai`` SDK in ``tests/fakes/test_openai_fake.py``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.received import read_body

UPSTREAM_KEY = "sk-upstream-test-0123456789"


@dataclass
class Scripted:
    status: int = 200
    body: Any = None  # JSON body for errors or a full custom response
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds to wait before answering
    cut_after: int | None = None  # stream: close the connection after this many chunks
    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    chunk_delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeOpenAI:
    def __init__(self, key: str = UPSTREAM_KEY, model_prefix: str = "") -> None:
        self.key = key
        self.received: list[Received] = []
        self.script: deque[Scripted] = deque()
        self.stream_closed_early = asyncio.Event()
        self.closed_early_count = 0
        self.completed_streams = 0
        self._ids = itertools.count(1)
        self.url: str | None = None  # set while served (tests.fakes.server.serve_fake)
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ])

    # -- test controls ----------------------------------------------------------------------------

    def push(self, **kwargs: Any) -> None:
        self.script.append(Scripted(**kwargs))

    def fail(self, status: int, message: str = "boom", *, code: str | None = None, type_: str | None = None,
             headers: dict[str, str] | None = None, times: int = 1) -> None:
        body = {"error": {"message": message, "type": type_ or ("server_error" if status >= 500 else "invalid_request_error"),
                          "param": None, "code": code}}
        for _ in range(times):
            self.push(status=status, body=body, headers=headers or {})

    def last(self) -> Received:
        return self.received[-1]

    # -- helpers ----------------------------------------------------------------------------------

    async def _accept(self, request: Request) -> tuple[Any, Response | None]:
        body = await read_body(request)
        self.received.append(Received(request.method, request.url.path, {k.lower(): v for k, v in request.headers.items()}, body))
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return body, _error(401, "Incorrect API key provided: sk-****. You can find your API key at https://platform.openai.com/account/api-keys.",
                                code="invalid_api_key")
        if request.method == "POST" and not isinstance(body, dict):
            return body, _error(400, "We could not parse the JSON body of your request.")
        return body, None

    async def _scripted(self) -> Scripted:
        step = self.script.popleft() if self.script else Scripted()
        if step.stall:
            await asyncio.sleep(step.stall)
        return step

    # -- routes -----------------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        body, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        for name in ("model", "messages"):
            if name not in body:
                return _error(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        for name in ("api_key", "api_base", "base_url"):
            if name in body:
                return _error(400, f"Unrecognized request argument supplied: {name}", param=name)
        step = await self._scripted()
        if step.status != 200:
            return JSONResponse(step.body, status_code=step.status, headers=step.headers)
        if step.body is not None:
            return JSONResponse(step.body, headers=step.headers)
        text, tool_calls = self._answer(body, step)
        completion_id = f"chatcmpl-fake{next(self._ids)}"
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        completion_tokens = max(1, len((text or "").split())) if text else 5
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        model = f"{body['model']}-served"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._stream(completion_id, model, text, tool_calls, usage, include_usage, step),
                                     media_type="text/event-stream", headers=step.headers)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if tool_calls:
            message["tool_calls"] = tool_calls
        n = int(body.get("n") or 1)
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if tool_calls else "stop"} for i in range(n)],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_fake",
        }, headers=step.headers)

    def _answer(self, body: dict[str, Any], step: Scripted) -> tuple[str | None, list[dict[str, Any]] | None]:
        if step.tool_calls is not None:
            return None, step.tool_calls
        messages = body["messages"]
        last = messages[-1]
        if body.get("tools") and last.get("role") != "tool" and body.get("tool_choice") != "none":
            calls = []
            for index, tool in enumerate(body["tools"][:2] if body.get("parallel_tool_calls", True) else body["tools"][:1]):
                name = tool["function"]["name"]
                calls.append({"id": f"call_fake{index}", "type": "function",
                              "function": {"name": name, "arguments": orjson.dumps({"city": "Paris", "n": index}).decode()}})
            return None, calls
        if step.text is not None:
            return step.text, None
        if last.get("role") == "tool":
            return f"tool said: {last.get('content')}", None
        content = last.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
        return f"echo: {content}", None

    async def _stream(self, completion_id: str, model: str, text: str | None, tool_calls, usage, include_usage: bool,
                      step: Scripted):
        created = int(time.time())
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "system_fingerprint": "fp_fake", "service_tier": "default",
                       "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        frames = [chunk({"role": "assistant", "content": "" if not tool_calls else None, "refusal": None})]
        if tool_calls:
            for index, call in enumerate(tool_calls):
                frames.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                                     "function": {"name": call["function"]["name"], "arguments": ""}}]}))
                arguments = call["function"]["arguments"]
                for start in range(0, len(arguments), 7):
                    frames.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start:start + 7]}}]}))
        else:
            words = (text or "").split(" ")
            for i, word in enumerate(words):
                frames.append(chunk({"content": word if i == 0 else " " + word}))
        frames.append(chunk({}, "tool_calls" if tool_calls else "stop"))
        if include_usage:
            frames.append(b"data: " + orjson.dumps({"id": completion_id, "object": "chat.completion.chunk",
                                                    "created": created, "model": model, "system_fingerprint": "fp_fake",
                                                    "choices": [], "usage": usage}) + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        sent = 0
        try:
            for frame in frames:
                if step.cut_after is not None and sent >= step.cut_after:
                    raise ConnectionAbortedError("fake cut the stream")
                yield frame
                sent += 1
                if step.chunk_delay:
                    await asyncio.sleep(step.chunk_delay)
            self.completed_streams += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.closed_early_count += 1
            self.stream_closed_early.set()
            raise

    async def embeddings(self, request: Request) -> Response:
        body, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        step = await self._scripted()
        if step.status != 200:
            return JSONResponse(step.body, status_code=step.status, headers=step.headers)
        if "input" not in body or "model" not in body:
            return _error(400, "Missing required parameter: 'input'.", param="input")
        inputs = body["input"] if isinstance(body["input"], list) and body["input"] and not isinstance(body["input"][0], int) else [body["input"]]
        dims = int(body.get("dimensions") or 8)
        data = []
        for index, item in enumerate(inputs):
            vector = [round((len(str(item)) + i) / 100, 4) for i in range(dims)]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(array("f", vector).tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(i).split()) for i in inputs)
        return JSONResponse({"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def models(self, request: Request) -> Response:
        _, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        return JSONResponse({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
            {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"}]})


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)
