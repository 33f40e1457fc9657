"""A fake of the OpenAI Chat Completions dialect as xAI, Together, Hugging Face (router and TGI) and
generic custom servers speak it, with one switch per vendor quirk (``Dialect``). The Azure, Mistral
and Perplexity Sonar fakes reuse its parts (``FakeState``, ``Reply``, ``answer``, ``stream_chunks``...).

Every fake records what it receives (``app.state.received``: ``Received(method, path, query, headers,
json)``, from ``tests/fakes/received.py``), checks it as the vendor does (auth, model, message order,
tool-call ids, fields the vendor rejects) and answers in the vendor's shapes. Tests script behaviour
with ``app.state.fake.push(Reply(...))`` (errors with status/body/headers, scripted bodies, scripted
stream chunks, a stream cut off midway); without a script the fake answers deterministically: a tool
call when tools are offered to a user turn, a sentence quoting the tool result after a tool turn,
else a greeting.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.received import Received, record

CREATED = 1700000000
ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass
class Reply:
    """A scripted answer: a JSON body (``body``) or SSE events (``chunks``: dicts sent as ``data: {json}``,
    strings sent as they are, ``[DONE]`` added when ``done``). ``cut`` stops the stream after that many
    events without a terminator; ``abort`` then breaks the connection instead of closing it cleanly."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[Any] | None = None
    done: bool = True
    cut: int | None = None
    abort: bool = False


class FakeState:
    """What one fake holds: its keys, what it received, the scripted replies; ``app`` and ``url`` once it
    is built (``fake_app``) and served (``tests.fakes.server.serve_fake``)."""

    def __init__(self, keys: tuple[str, ...] = ("test-key",)) -> None:
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.keys = set(keys)
        self.app: Starlette | None = None
        self.url: str | None = None

    def reset(self) -> None:
        self.replies.clear()
        self.received.clear()

    def push(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def next_reply(self) -> Reply | None:
        return self.replies.popleft() if self.replies else None


def openai_error(status: int, message: str, type_: str = "invalid_request_error", code: Any = None,
                 param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class Dialect:
    """The switches that make the generic fake behave like one vendor."""

    name: str
    owner: str
    models: tuple[str, ...]
    finish_stop: str = "stop"
    models_bare_array: bool = False  # Together
    auth_header: str = "authorization"
    auth_scheme: str = "Bearer"
    bad_key_status: int = 401
    error_body: Callable[..., Any] = openai_error
    stream_done: bool = True  # send data: [DONE]
    stream_usage: str = "option"  # "option" (stream_options.include_usage) | "last_chunk" | "every_chunk"
    reject_fields: frozenset[str] = frozenset()
    reasoning: bool = False  # xAI: reasoning_content in answers
    embeddings: bool = True
    native_base64: bool = True
    sloppy: bool = False  # custom: no id/object/created, tool deltas without index, arguments as objects
    pipeline: bool = False  # HF router: the feature-extraction pipeline route
    extra: dict[str, Any] = field(default_factory=dict)  # top-level fields on answers and chunks (Sonar)
    tool_id: Callable[[int], str] = lambda n: f"call_{n:04d}fake"
    validate: Callable[[dict[str, Any]], tuple[int, Any] | None] | None = None  # vendor-specific checks
    models_body: Callable[[], Any] | None = None  # the vendor's own model list
    decorate_chunks: Callable[[list[Any]], list[Any]] | None = None  # vendor extras on stream chunks
    prefix: str = "/v1"


def xai_error(status: int, message: str, type_: str = "", code: Any = None, param: Any = None) -> dict[str, Any]:
    return {"code": "Client specified an invalid argument", "error": message}


def hf_error(status: int, message: str, type_: str = "", code: Any = None, param: Any = None) -> dict[str, Any]:
    return {"error": message}


def tgi_error(status: int, message: str, type_: str = "validation", code: Any = None,
              param: Any = None) -> dict[str, Any]:
    return {"error": message, "error_type": type_ or "validation"}


XAI = Dialect("xai", "xai", ("grok-4", "grok-3-mini"), bad_key_status=400, error_body=xai_error, reasoning=True,
              embeddings=False)
TOGETHER = Dialect("together", "together", ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "BAAI/bge-base-en-v1.5"),
                   finish_stop="eos", models_bare_array=True, native_base64=False)
HF_ROUTER = Dialect("huggingface", "huggingface", ("Qwen/Qwen3-8B", "sentence-transformers/all-MiniLM-L6-v2"),
                    error_body=hf_error, pipeline=True, native_base64=False)
TGI = Dialect("tgi", "tgi", ("tgi",), finish_stop="eos_token", error_body=tgi_error, embeddings=False)
CUSTOM = Dialect("custom", "vllm", ("local-model",), auth_header="x-api-key", auth_scheme="", sloppy=True,
                 stream_done=False, stream_usage="last_chunk", native_base64=False, finish_stop="end_turn",
                 reject_fields=frozenset({"stream_options", "user", "max_completion_tokens"}))
DIALECTS = {d.name: d for d in (XAI, TOGETHER, HF_ROUTER, TGI, CUSTOM)}


# -- request checks ---------------------------------------------------------------------------------

def authorised(dialect: Dialect, state: FakeState, headers: Any) -> bool:
    value = headers.get(dialect.auth_header, "")
    expected = {f"{dialect.auth_scheme} {k}" if dialect.auth_scheme else k for k in state.keys}
    return value in expected


def bad_key(dialect: Dialect) -> Response:
    message = "Incorrect API key provided: te***. You can obtain an API key from the console."
    return json_response(dialect.bad_key_status, dialect.error_body(dialect.bad_key_status, message,
                                                                      "authentication_error", "invalid_api_key"))


def check_messages(messages: Any) -> str | None:
    """OpenAI's own rules on ``messages``; an error message, or None."""
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"messages[{i}]: invalid role"
        role = message["role"]
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (f"messages[{i}]: messages with role 'tool' must be a response to a preceding message "
                        "with 'tool_calls'")
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            return f"messages[{i}]: an assistant message with 'tool_calls' must be followed by tool messages"
        if role == "assistant":
            pending = {tc.get("id") for tc in message.get("tool_calls") or []}
    return None


def check_chat(dialect: Dialect, body: Any) -> tuple[int, Any] | None:
    if not isinstance(body, dict):
        return 400, dialect.error_body(400, "the body must be a JSON object")
    rejected = sorted(set(body) & dialect.reject_fields)
    if rejected:
        return 400, dialect.error_body(400, f"unknown field: {rejected[0]}", "invalid_request_error", None, rejected[0])
    if not body.get("model"):
        return 400, dialect.error_body(400, "you must provide a model parameter")
    problem = check_messages(body.get("messages"))
    if problem:
        return 400, dialect.error_body(400, problem, "invalid_request_error", None, "messages")
    return dialect.validate(body) if dialect.validate else None


# -- answers ----------------------------------------------------------------------------------------

def text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def answer(dialect: Dialect, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The default answer: (content, tool_calls)."""
    last = body["messages"][-1]
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools and last.get("role") == "user" and body.get("tool_choice") != "none":
        name = tools[0]["function"]["name"]
        return None, [{"id": dialect.tool_id(len(body["messages"])), "type": "function",
                       "function": {"name": name, "arguments": '{"city": "Paris"}'}}]
    if last.get("role") == "tool":
        return f"The tool said: {text_of(last.get('content'))}", []
    return f"Hello from {dialect.name}! You said: {text_of(last.get('content'))}", []


def usage_for(body: dict[str, Any], content: str | None) -> dict[str, int]:
    prompt = sum(len(text_of(m.get("content")).split()) + 1 for m in body["messages"])
    completion = len((content or "").split()) + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(dialect: Dialect, model: str, content: str | None, tool_calls: list[dict[str, Any]],
               usage: dict[str, int], finish: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
        if dialect.sloppy:
            message["tool_calls"] = [{**tc, "function": {**tc["function"],
                                                         "arguments": orjson.loads(tc["function"]["arguments"])}}
                                     for tc in tool_calls]
    if dialect.reasoning:
        message["reasoning_content"] = "Let me think."
    finish = finish or ("tool_calls" if tool_calls else dialect.finish_stop)
    data: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion", "created": CREATED, "model": model,
                            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                            "usage": usage, **dialect.extra}
    if dialect.sloppy:
        for key in ("id", "object", "created"):
            data.pop(key)
    return data


def stream_chunks(dialect: Dialect, body: dict[str, Any], model: str, content: str | None,
                  tool_calls: list[dict[str, Any]], usage: dict[str, int], finish: str | None = None) -> list[Any]:
    """The chunk sequence a vendor streams for an answer (without [DONE])."""
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED,
                                "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                             "finish_reason": finish_reason}], **dialect.extra}
        if dialect.sloppy:
            for key in ("id", "object", "created"):
                data.pop(key)
        return data

    chunks = [chunk({"role": "assistant", "content": ""})]
    if dialect.reasoning:
        chunks.append(chunk({"reasoning_content": "Let me think."}))
    words = (content or "").split(" ")
    for i in range(0, len(words) if content else 0, 3):
        piece = " ".join(words[i:i + 3])
        chunks.append(chunk({"content": piece if i == 0 else " " + piece}))
    for index, tc in enumerate(tool_calls):
        args = tc["function"]["arguments"]
        first = {"index": index, "id": tc["id"], "type": "function", "function": {"name": tc["function"]["name"],
                                                                                  "arguments": ""}}
        later = [{"index": index, "function": {"arguments": part}} for part in (args[:8], args[8:])]
        if dialect.sloppy:
            for part in (first, *later):
                part.pop("index")
            later[0]["id"] = tc["id"]
        chunks.append(chunk({"tool_calls": [first]}))
        chunks.extend(chunk({"tool_calls": [part]}) for part in later)
    chunks.append(chunk({}, finish or ("tool_calls" if tool_calls else dialect.finish_stop)))
    wants_usage = ((body.get("stream_options") or {}).get("include_usage"))
    if dialect.stream_usage == "option" and wants_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = usage
        chunks.append(last)
    elif dialect.stream_usage == "last_chunk":
        chunks[-1]["usage"] = usage
    elif dialect.stream_usage == "every_chunk":
        for c in chunks:
            c["usage"] = usage
    return chunks


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    return Response(raw, status_code=status, headers=headers, media_type="application/json")


def sse_response(events: list[Any], *, done: bool = True, cut: int | None = None, abort: bool = False,
                 headers: dict[str, str] | None = None) -> StreamingResponse:
    frames = [e.encode() if isinstance(e, str) else b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    if cut is not None:
        frames = frames[:cut]
    elif done:
        frames.append(b"data: [DONE]\n\n")

    async def body():
        for frame in frames:
            yield frame
        if cut is not None and abort:
            raise ConnectionResetError("the fake broke the stream")

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", **(headers or {})})


def render(reply: Reply, stream: bool) -> Response:
    if reply.chunks is not None:
        return sse_response(reply.chunks, done=reply.done, cut=reply.cut, abort=reply.abort, headers=reply.headers)
    return json_response(reply.status, reply.body, reply.headers)


def chat_response(dialect: Dialect, state: FakeState, body: dict[str, Any], model: str | None = None) -> Response:
    """Scripted reply, or the default answer (JSON or SSE)."""
    reply = state.next_reply()
    stream = bool(body.get("stream"))
    if reply is not None:
        if reply.chunks is None and reply.body is None and reply.status == 200:
            reply = replace(reply, chunks=_default_chunks(dialect, body, model)) if stream else replace(
                reply, body=_default_body(dialect, body, model))
        return render(reply, stream)
    if stream:
        return sse_response(_default_chunks(dialect, body, model), done=dialect.stream_done)
    return json_response(200, _default_body(dialect, body, model))


def _default_body(dialect: Dialect, body: dict[str, Any], model: str | None) -> dict[str, Any]:
    content, tool_calls = answer(dialect, body)
    return completion(dialect, model or body["model"], content, tool_calls, usage_for(body, content))


def _default_chunks(dialect: Dialect, body: dict[str, Any], model: str | None) -> list[Any]:
    content, tool_calls = answer(dialect, body)
    chunks = stream_chunks(dialect, body, model or body["model"], content, tool_calls, usage_for(body, content))
    return dialect.decorate_chunks(chunks) if dialect.decorate_chunks else chunks


def vector(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 4) for i in range(dims)]


def embeddings_answer(dialect: Dialect, body: dict[str, Any], model: str | None = None) -> tuple[int, Any]:
    inputs = body.get("input")
    if not body.get("model") and model is None:
        return 400, dialect.error_body(400, "you must provide a model parameter")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return 400, dialect.error_body(400, "'input' must be a string or a non-empty array", param="input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        return 400, dialect.error_body(400, f"invalid encoding_format {fmt!r}", param="encoding_format")
    dims = int(body.get("dimensions") or body.get("output_dimension") or 8)
    data = []
    for i, item in enumerate(inputs):
        vec = vector(str(item), dims)
        if fmt == "base64" and dialect.native_base64:
            vec = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vec})
    tokens = sum(len(str(i).split()) for i in inputs)
    return 200, {"id": "embd-fake", "object": "list", "data": data, "model": model or body["model"],
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def models_answer(dialect: Dialect) -> Any:
    if dialect.models_body is not None:
        return dialect.models_body()
    items = [{"id": m, "object": "model", "created": CREATED, "owned_by": dialect.owner} for m in dialect.models]
    if dialect.models_bare_array:
        return [{**m, "type": "chat", "organization": dialect.owner.title(), "context_length": 8192,
                 "pricing": {"input": 0.1, "output": 0.2}} for m in items]
    return {"object": "list", "data": items}


def pipeline_answer(body: Any) -> tuple[int, Any]:
    """HF feature-extraction: ``{"inputs": str | [str]}`` -> a vector, or a list of vectors."""
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if isinstance(inputs, str):
        return 200, vector(inputs)
    if isinstance(inputs, list) and inputs and all(isinstance(i, str) for i in inputs):
        return 200, [vector(i) for i in inputs]
    return 400, {"error": "Input should be a valid string or list of strings"}


# -- the app ----------------------------------------------------------------------------------------

async def admit(dialect: Dialect, state: FakeState, request: Request) -> tuple[Any, Response | None]:
    """Record the request and check its key: (body, None), or (body, the vendor's refusal)."""
    body = await record(request, state.received)
    if not authorised(dialect, state, request.headers):
        return body, bad_key(dialect)
    return body, None


async def chat_endpoint(dialect: Dialect, state: FakeState, request: Request) -> Response:
    """``POST .../chat/completions`` as the dialect's vendor answers it."""
    body, refused = await admit(dialect, state, request)
    if refused:
        return refused
    problem = check_chat(dialect, body)
    return json_response(*problem) if problem else chat_response(dialect, state, body)


def fake_app(routes: list[Route], state: FakeState) -> Starlette:
    """The Starlette app of a fake: tests reach ``state`` as ``app.state.fake`` (what it received also as
    ``app.state.received``), and ``state.app`` is what gets served."""
    app = Starlette(routes=routes)
    app.state.fake = state
    app.state.received = state.received
    state.app = app
    return app


def make_app(dialect: Dialect, keys: tuple[str, ...] = ("test-key",)) -> Starlette:
    state = FakeState(keys)

    async def chat(request: Request) -> Response:
        return await chat_endpoint(dialect, state, request)

    async def embeddings(request: Request) -> Response:
        body, refused = await admit(dialect, state, request)
        if refused:
            return refused
        if not dialect.embeddings:
            return json_response(404, dialect.error_body(404, "Not Found"))
        reply = state.next_reply()
        if reply is not None:
            return render(reply, False)
        return json_response(*embeddings_answer(dialect, body if isinstance(body, dict) else {}))

    async def models(request: Request) -> Response:
        _, refused = await admit(dialect, state, request)
        if refused:
            return refused
        reply = state.next_reply()
        return render(reply, False) if reply is not None else json_response(200, models_answer(dialect))

    async def pipeline(request: Request) -> Response:
        body, refused = await admit(dialect, state, request)
        if refused:
            return refused
        reply = state.next_reply()
        return render(reply, False) if reply is not None else json_response(*pipeline_answer(body))

    routes = [Route(f"{dialect.prefix}/chat/completions", chat, methods=["POST"]),
              Route(f"{dialect.prefix}/embeddings", embeddings, methods=["POST"]),
              Route(f"{dialect.prefix}/models", models, methods=["GET"])]
    if dialect.pipeline:
        routes.append(Route("/hf-inference/models/{model:path}/pipeline/feature-extraction", pipeline,
                            methods=["POST"]))
    app = fake_app(routes, state)
    app.state.dialect = dialect
    return app
