"""A fake Anthropic Messages API on a real socket (serve it with ``tests.fakes.server.FakeServer``).

Routes: ``POST /v1/messages`` (JSON, or named-event SSE when ``"stream": true``), ``GET /v1/models``
and ``GET /v1/models/{id}``. Every request is checked like the real API checks it
(``tests/fakes/anthropic_checks.py``) and recorded in ``app.state.received``; errors use Anthropic's
shape ``{"type": "error", "error": {"type", "message"}, "request_id"}`` and a ``request-id`` header.

Tests script the answers of ``/v1/messages``: ``app.state.fake.push(behaviour, ...)`` queues one
behaviour per request; ``app.state.fake.default`` is used when the queue is empty (an echo reply)::

    Reply(content=[text("hi"), tool_use("get_weather", {"city": "Paris"})], stop_reason="tool_use")
    Fail(429, "rate_limit_error", "slow down", headers={"retry-after": "7"})
    Reply(..., error_after=3, error=("overloaded_error", "Overloaded"))  # event: error mid-stream
    Reply(..., cut_after=3)        # the stream ends after 3 events, without message_stop
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.sse import encode_event
from tests.fakes.anthropic_checks import Problem, check_body, check_headers
from tests.fakes.received import Received
from tests.fakes.server import FakeServer

API_KEY = "sk-ant-fake-key"

MODELS = [
    {"type": "model", "id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6",
     "created_at": "2026-02-17T00:00:00Z", "max_input_tokens": 200000, "max_tokens": 64000,
     "lifecycle": "active"},
    {"type": "model", "id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5",
     "created_at": "2025-10-15T00:00:00Z", "max_input_tokens": 200000, "max_tokens": 64000,
     "lifecycle": "active"},
    {"type": "model", "id": "claude-opus-4-7", "display_name": "Claude Opus 4.7",
     "created_at": "2025-08-05T00:00:00Z", "max_input_tokens": 200000, "max_tokens": 32000,
     "lifecycle": "active"},
]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, arguments: dict[str, Any], block_id: str = "toolu_01") -> dict[str, Any]:
    return {"type": "tool_use", "id": block_id, "name": name, "input": arguments}


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": "sig-fake"}


@dataclass
class Reply:
    content: list[dict[str, Any]] = field(default_factory=lambda: [text("Hello from the fake Claude.")])
    stop_reason: str = "end_turn"
    usage: dict[str, Any] = field(default_factory=lambda: {"input_tokens": 12, "output_tokens": 7})
    model: str | None = None  # default: the requested model
    chunk: int = 4  # characters per text_delta / input_json_delta in streams
    cut_after: int | None = None  # stream only: stop after this many events (no message_stop)
    error_after: int | None = None  # stream only: send ``event: error`` after this many events
    error: tuple[str, str] = ("overloaded_error", "Overloaded")
    delay: float = 0.0  # seconds between stream events


@dataclass
class Fail:
    status: int
    type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class FakeState:
    def __init__(self, api_key: str, reject_temperature_with_top_p: bool) -> None:
        self.api_key = api_key
        self.reject_temperature_with_top_p = reject_temperature_with_top_p
        self.received: list[Received] = []
        self.script: deque[Reply | Fail] = deque()
        self.default: Reply | Fail | None = None  # None: echo the last user text
        self.models = [dict(m) for m in MODELS]
        self.counter = 0
        self.app: Starlette | None = None  # set by create_app
        self.url: str | None = None  # set while served

    def reset(self) -> None:
        self.received.clear()
        self.script.clear()
        self.default = None
        self.models = [dict(m) for m in MODELS]

    def push(self, *behaviours: Reply | Fail) -> None:
        self.script.extend(behaviours)

    def messages_requests(self) -> list[Received]:
        return [r for r in self.received if r.path == "/v1/messages"]

    def next_behaviour(self, body: dict[str, Any]) -> Reply | Fail:
        if self.script:
            return self.script.popleft()
        return self.default or Reply(content=[text(f"You said: {_last_user_text(body)}")])

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_fake{self.counter:04d}"


def error_response(state: FakeState, status: int, kind: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = state.next_id("req")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id, **(headers or {})})


def _problem_response(state: FakeState, problem: Problem) -> JSONResponse:
    return error_response(state, *problem)


async def _record(request: Request) -> tuple[Received, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = ValueError
    state: FakeState = request.app.state.fake
    received = Received(request.method, request.url.path, dict(request.query_params),
                        {k.lower(): v for k, v in request.headers.items()}, None if data is ValueError else data)
    state.received.append(received)
    return received, data


async def _admit(request: Request) -> tuple[FakeState, Received, Any, Response | None]:
    """Record the request and check its headers: (state, what was received, the body, the refusal or None)."""
    state: FakeState = request.app.state.fake
    received, body = await _record(request)
    problem = check_headers(received.headers, state.api_key)
    return state, received, body, None if problem is None else _problem_response(state, problem)


async def messages(request: Request) -> Response:
    state, _, body, refused = await _admit(request)
    if refused is not None:
        return refused
    if body is ValueError:
        return error_response(state, 400, "invalid_request_error", "There was an issue with the JSON body of the request")
    problem = check_body(body, state.reject_temperature_with_top_p)
    if problem is not None:
        return _problem_response(state, problem)
    behaviour = state.next_behaviour(body)
    if isinstance(behaviour, Fail):
        return error_response(state, behaviour.status, behaviour.type, behaviour.message, behaviour.headers)
    message = _message(state, behaviour, body)
    if not body.get("stream"):
        return JSONResponse(message, headers={"request-id": state.next_id("req")})
    return StreamingResponse(_stream(message, behaviour), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "request-id": state.next_id("req")})


def _message(state: FakeState, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0, "service_tier": "standard", **reply.usage}
    return {"id": state.next_id("msg"), "type": "message", "role": "assistant",
            "model": reply.model or body["model"], "content": reply.content, "stop_reason": reply.stop_reason,
            "stop_sequence": None, "usage": usage}


def stream_events(message: dict[str, Any], chunk: int = 4) -> list[tuple[str, dict[str, Any]]]:
    """The named events Anthropic sends for ``message``, in order (text and JSON split in pieces)."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": min(1, usage["output_tokens"])}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": _empty(block)}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        for delta in _deltas(block, chunk):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "text":
        return {"type": "text", "text": ""}
    if block["type"] == "tool_use":
        return {**block, "input": {}}
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return block


def _deltas(block: dict[str, Any], chunk: int) -> list[dict[str, Any]]:
    if block["type"] == "text":
        value = block["text"]
        return [{"type": "text_delta", "text": value[i:i + chunk]} for i in range(0, len(value), chunk)]
    if block["type"] == "tool_use":
        value = json.dumps(block["input"])
        pieces = [""] + [value[i:i + chunk] for i in range(0, len(value), chunk)]
        return [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    if block["type"] == "thinking":
        return [{"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block.get("signature", "")}]
    return []


async def _stream(message: dict[str, Any], reply: Reply):
    for count, (name, payload) in enumerate(stream_events(message, reply.chunk)):
        if reply.error_after is not None and count == reply.error_after:
            kind, text_ = reply.error
            yield encode_event("error", {"type": "error", "error": {"type": kind, "message": text_}})
            return
        if reply.cut_after is not None and count == reply.cut_after:
            return
        if reply.delay:
            await asyncio.sleep(reply.delay)
        yield encode_event(name, payload)


async def list_models(request: Request) -> Response:
    state, received, _, refused = await _admit(request)
    if refused is not None:
        return refused
    models = state.models
    after, before = received.query.get("after_id"), received.query.get("before_id")
    ids = [m["id"] for m in models]
    if after in ids:
        models = models[ids.index(after) + 1:]
    elif before in ids:
        models = models[:ids.index(before)]
    try:
        limit = int(received.query.get("limit", "20"))
    except ValueError:
        return _problem_response(state, (400, "invalid_request_error", "limit: Input should be a valid integer"))
    if not 1 <= limit <= 1000:
        return _problem_response(state, (400, "invalid_request_error", "limit: must be between 1 and 1000"))
    page = models[:limit]
    return JSONResponse({"data": page, "has_more": len(models) > limit,
                         "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})


async def get_model(request: Request) -> Response:
    state, _, _, refused = await _admit(request)
    if refused is not None:
        return refused
    for model in state.models:
        if model["id"] == request.path_params["model_id"]:
            return JSONResponse(model)
    return error_response(state, 404, "not_found_error", f"model: {request.path_params['model_id']}")


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    kind = "not_found_error" if status == 404 else "invalid_request_error" if status < 500 else "api_error"
    return error_response(request.app.state.fake, status, kind, f"{request.method} {request.url.path}: {exc}")


def create_app(api_key: str = API_KEY, reject_temperature_with_top_p: bool = True) -> Starlette:
    app = Starlette(routes=[
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    ], exception_handlers={HTTPException: _http_error})
    app.state.fake = FakeState(api_key, reject_temperature_with_top_p)
    app.state.fake.app = app
    app.state.received = app.state.fake.received
    return app


@contextmanager
def serve(**kwargs: Any) -> Iterator[tuple[FakeServer, FakeState]]:
    """``with serve() as (server, fake):`` the fake on a free port; ``fake`` is its ``FakeState``."""
    app = create_app(**kwargs)
    with FakeServer(app) as server:
        yield server, app.state.fake
