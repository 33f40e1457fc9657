"""A fake Cohere API (v2 chat and embed, v1 models) on real HTTP, for the SDK, provider and e2e tests.

It speaks Cohere's wire format, checks what it receives the way the real API does (Bearer key, known
fields only, model present, tool messages answering an earlier tool call, ``p`` in range, valid
``tool_choice``) with Cohere's error body ``{"message": ...}``, and records every request in
``fake.received``. Tests script behaviour with ``fake.reply(...)``, ``fake.error(...)`` and
``fake.cut_stream(...)``; each scripted entry is used by the next chat/embed request.

    fake = CohereFake()
    with FakeServer(fake.app) as server:
        fake.reply(text="hi", usage={"tokens": {"input_tokens": 3.0, "output_tokens": 1.0}})
        cohere.ClientV2(api_key="k", base_url=server.url).chat(model="command-a", messages=[...])
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.received import Received, record

CHAT_FIELDS = {"model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format",
               "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty",
               "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking", "priority", "stream"}
EMBED_FIELDS = {"model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension",
                "max_tokens", "truncate", "priority"}
ROLES = {"system", "user", "assistant", "tool"}
MODELS = [
    {"name": "command-a-03-2025", "endpoints": ["chat"], "finetuned": False, "context_length": 256000.0,
     "is_deprecated": False, "default_endpoints": ["chat"], "features": ["tools", "json_mode"]},
    {"name": "command-a-vision-07-2025", "endpoints": ["chat"], "finetuned": False, "context_length": 128000.0,
     "is_deprecated": False, "default_endpoints": [], "features": ["vision"]},
    {"name": "embed-v4.0", "endpoints": ["embed"], "finetuned": False, "context_length": 128000.0,
     "is_deprecated": False, "default_endpoints": ["embed"], "features": []},
]


class Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


class CohereFake:
    def __init__(self, valid_keys: set[str] | None = None) -> None:
        self.received: list[Received] = []
        self.script: list[dict[str, Any]] = []
        self.valid_keys = valid_keys  # None: any non-empty Bearer key is accepted
        self.url: str | None = None  # set while served (tests.fakes.server.serve_fake)
        self.app = Starlette(routes=[
            Route("/v2/chat", self.chat, methods=["POST"]),
            Route("/v2/embed", self.embed, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ])
        self.app.state.fake = self

    # -- scripting ------------------------------------------------------------------------------

    def reply(self, text: str | None = None, *, tool_calls: list[dict[str, Any]] | None = None,
              tool_plan: str | None = None, finish_reason: str | None = None, usage: dict[str, Any] | None = None,
              thinking: str | None = None, error: str | None = None, cut_after: int | None = None,
              abort: bool = False) -> None:
        """The next chat answer; ``cut_after``: a stream stops after that many events, without message-end
        (``abort``: the socket is dropped instead of the body ending cleanly)."""
        self.script.append({"kind": "reply", "text": text, "tool_calls": tool_calls, "tool_plan": tool_plan,
                            "finish_reason": finish_reason, "usage": usage, "thinking": thinking, "error": error,
                            "cut": {"after": cut_after, "abort": abort} if cut_after is not None else None})

    def error(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.script.append({"kind": "error", "status": status, "body": body, "headers": headers or {}})

    def cut_stream(self, after_events: int = 3, *, abort: bool = False) -> None:
        """The next stream (default text) stops after ``after_events`` events, without message-end."""
        self.reply(cut_after=after_events, abort=abort)

    def reset(self) -> None:
        self.script.clear()
        self.received.clear()

    def last(self, path: str | None = None) -> Received:
        return [r for r in self.received if path is None or r.path == path][-1]

    # -- helpers --------------------------------------------------------------------------------

    def _auth(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Reject(401, "no api key supplied")
        if self.valid_keys is not None and key.strip() not in self.valid_keys:
            raise Reject(401, "invalid api token")

    def _next(self) -> dict[str, Any] | None:
        return self.script.pop(0) if self.script else None

    async def _guard(self, request: Request, check) -> tuple[Any, dict[str, Any] | None] | Response:
        body = await record(request, self.received)
        try:
            self._auth(request)
            if not isinstance(body, dict):
                raise Reject(400, "invalid request: body must be a JSON object")
            check(body)
        except Reject as exc:
            return json_response({"id": "fake-error", "message": exc.message}, exc.status)
        entry = self._next()
        if entry and entry["kind"] == "error":
            payload = entry["body"] if entry["body"] is not None else {"message": f"error {entry['status']}"}
            return json_response(payload, entry["status"], entry["headers"])
        return body, entry

    # -- /v2/chat -------------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        guarded = await self._guard(request, check_chat)
        if isinstance(guarded, Response):
            return guarded
        body, entry = guarded
        entry = entry or {"kind": "reply"}
        reply = build_reply(body, entry)
        if body.get("stream"):
            return StreamingResponse(stream_events(reply, entry.get("cut")), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        return json_response(reply)

    # -- /v2/embed ------------------------------------------------------------------------------

    async def embed(self, request: Request) -> Response:
        guarded = await self._guard(request, check_embed)
        if isinstance(guarded, Response):
            return guarded
        body, _ = guarded
        dims = int(body.get("output_dimension") or 8)
        texts = body.get("texts") or []
        floats = [vector(t, dims) for t in texts]
        embeddings: dict[str, Any] = {}
        for kind in body.get("embedding_types") or ["float"]:
            if kind == "float":
                embeddings["float"] = floats
            elif kind == "int8":
                embeddings["int8"] = [[int(x * 127) for x in v] for v in floats]
            else:
                return json_response({"message": f"invalid request: embedding type {kind} not in fake"}, 400)
        tokens = sum(len(t.split()) for t in texts)
        return json_response({"id": "embed-fake-1", "response_type": "embeddings_by_type", "embeddings": embeddings,
                              "texts": texts, "meta": {"api_version": {"version": "2"},
                                                       "billed_units": {"input_tokens": float(tokens)}}})

    # -- /v1/models -----------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        await record(request, self.received)
        try:
            self._auth(request)
        except Reject as exc:
            return json_response({"message": exc.message}, exc.status)
        entry = self._next()
        if entry and entry["kind"] == "error":
            return json_response(entry["body"] or {"message": "error"}, entry["status"], entry["headers"])
        endpoint = request.query_params.get("endpoint")
        items = [m for m in MODELS if not endpoint or endpoint in m["endpoints"]]
        size = int(float(request.query_params.get("page_size") or 20))
        start = int(request.query_params.get("page_token") or 0)
        page = items[start:start + size]
        token = str(start + size) if start + size < len(items) else None
        return json_response({"models": page, "next_page_token": token})


# -- validation (what the real API rejects) -------------------------------------------------------


def check_fields(body: dict[str, Any], known: set[str]) -> None:
    """Fields the endpoint does not know are refused, and ``model`` is required."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise Reject(400, f"invalid request: unknown field: parameter {unknown[0]} is not a valid field")
    if not body.get("model"):
        raise Reject(400, "invalid request: model must be specified")


def check_chat(body: dict[str, Any]) -> None:
    check_fields(body, CHAT_FIELDS)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Reject(400, "invalid request: messages must not be empty")
    tools = body.get("tools") or []
    tool_names = set()
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict) \
                or not function.get("name"):
            raise Reject(400, "invalid request: each tool must be {type: function, function: {name, ...}}")
        tool_names.add(function["name"])
    check_messages(messages)
    if body.get("tool_choice") is not None:
        if body["tool_choice"] not in ("REQUIRED", "NONE"):
            raise Reject(400, "invalid request: tool_choice must be one of REQUIRED, NONE")
        if not tools:
            raise Reject(400, "invalid request: tool_choice requires tools")
    p = body.get("p")
    if p is not None and not (0.01 <= p <= 0.99):
        raise Reject(400, "invalid request: p must be between 0.01 and 0.99")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5
                              or not all(isinstance(s, str) for s in stops)):
        raise Reject(400, "invalid request: stop_sequences must be a list of at most 5 strings")
    response_format = body.get("response_format")
    if response_format is not None and (response_format.get("type") not in ("text", "json_object")):
        raise Reject(400, "invalid request: response_format.type must be text or json_object")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise Reject(400, "invalid request: stream must be a boolean")


def check_messages(messages: list[Any]) -> None:
    open_calls: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise Reject(400, f"invalid request: messages[{i}].role must be one of system, user, assistant, tool")
        content = message.get("content")
        if role == "user":
            check_user_content(content, i)
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if content is None and not calls:
                raise Reject(400, f"invalid request: messages[{i}] needs content or tool_calls")
            for call in calls:
                function = call.get("function") or {}
                if not call.get("id") or not function.get("name") or not isinstance(function.get("arguments"), str):
                    raise Reject(400, f"invalid request: messages[{i}].tool_calls need id, name, string arguments")
                open_calls.add(call["id"])
        elif role == "tool":
            if message.get("tool_call_id") not in open_calls:
                raise Reject(400, f"invalid request: messages[{i}] answers an unknown tool_call_id")
            if content is None:
                raise Reject(400, f"invalid request: messages[{i}].content is required")
        elif not isinstance(content, (str, list)):
            raise Reject(400, f"invalid request: messages[{i}].content is required")


def check_user_content(content: Any, i: int) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise Reject(400, f"invalid request: messages[{i}].content must be a string or a list of content items")
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and isinstance(part.get("image_url"), dict) and part["image_url"].get("url"):
            continue
        raise Reject(400, f"invalid request: messages[{i}] has an invalid content item")


def check_embed(body: dict[str, Any]) -> None:
    check_fields(body, EMBED_FIELDS)
    if not body.get("input_type"):
        raise Reject(400, "invalid request: input_type is required for embed-v3.0 and newer models")
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Reject(400, "invalid request: texts must be a non-empty list of strings")
    if len(texts) > 96:
        raise Reject(400, "invalid request: texts cannot have more than 96 elements")


# -- replies --------------------------------------------------------------------------------------


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def build_reply(body: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    calls = entry.get("tool_calls")
    text = entry.get("text")
    if text is None and not calls:
        images = sum(1 for m in body["messages"] if isinstance(m.get("content"), list)
                     for p in m["content"] if p.get("type") == "image_url")
        text = f"Echo: {last_user_text(body)}" + (f" [{images} image(s)]" if images else "")
    content = []
    if entry.get("thinking"):
        content.append({"type": "thinking", "thinking": entry["thinking"]})
    if text:
        content.append({"type": "text", "text": text})
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [{"id": c.get("id", f"{c['name']}_fake{i}"), "type": "function",
                                  "function": {"name": c["name"], "arguments": c.get("arguments", "{}")}}
                                 for i, c in enumerate(calls)]
        message["tool_plan"] = entry.get("tool_plan") or "I will call a tool."
    finish = entry.get("finish_reason") or ("TOOL_CALL" if calls else "COMPLETE")
    usage = entry.get("usage") or {"billed_units": {"input_tokens": 5.0, "output_tokens": 7.0},
                                   "tokens": {"input_tokens": 71.0, "output_tokens": 7.0}, "cached_tokens": 0.0}
    reply = {"id": "c0ffee00-0000-4000-8000-000000000001", "finish_reason": finish, "message": message,
             "usage": usage}
    if entry.get("error"):
        reply["error"] = entry["error"]
    return reply


def reply_events(reply: dict[str, Any]) -> list[dict[str, Any]]:
    message = reply["message"]
    events: list[dict[str, Any]] = [{"id": reply["id"], "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}]
    if message.get("tool_plan"):
        for piece in split(message["tool_plan"]):
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
    for index, item in enumerate(message["content"]):
        key = "thinking" if item["type"] == "thinking" else "text"
        events.append({"type": "content-start", "index": index,
                       "delta": {"message": {"content": {"type": item["type"], key: ""}}}})
        for piece in split(item[key]):
            events.append({"type": "content-delta", "index": index,
                           "delta": {"message": {"content": {key: piece}}}})
        events.append({"type": "content-end", "index": index})
    for index, call in enumerate(message.get("tool_calls") or []):
        head = {"id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": head}}})
        for piece in split(call["function"]["arguments"]):
            events.append({"type": "tool-call-delta", "index": index,
                           "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}})
        events.append({"type": "tool-call-end", "index": index})
    end: dict[str, Any] = {"finish_reason": reply["finish_reason"], "usage": reply["usage"]}
    if reply.get("error"):
        end["error"] = reply["error"]
    events.append({"type": "message-end", "delta": end})
    return events


def split(text: str, size: int = 6) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


async def stream_events(reply: dict[str, Any], cut: dict[str, Any] | None):
    for n, event in enumerate(reply_events(reply)):
        if cut is not None and n >= cut["after"]:
            if cut["abort"]:
                raise ConnectionResetError("fake cohere dropped the stream")
            return
        yield f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n"
        await asyncio.sleep(0)


def vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 4) for i in range(dims)]
