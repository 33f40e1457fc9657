"""A fake Perplexity API: the Agent API (``POST /v1/agent``, alias ``/v1/responses``; strict,
Responses-shaped, typed SSE events without ``[DONE]``), legacy Sonar chat completions
(``POST /chat/completions``; citations and search results on answers and chunks, usage on every chunk,
no ``[DONE]``) and ``GET /v1/models``.

Agent API behaviour: unknown fields are refused with 400 (``json: unknown field "X"``); ``model`` must be a
provider-prefixed slug (or ``preset`` given); input items are checked (message / function_call /
function_call_output, with call ids that match). A user text containing ``FAIL_ME`` or ``CANCEL_ME``
gives a ``failed``/``cancelled`` response with HTTP 200; ``TRUNCATE_ME`` gives ``incomplete``
(``max_output_tokens``). With a ``web_search`` tool the answer carries a ``search_results`` item and URL
annotations. ``app.state.fake.push(Reply(...))`` scripts anything else.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.openai_family import (
    CREATED,
    Dialect,
    FakeState,
    authorised,
    chat_endpoint,
    fake_app,
    json_response,
    render,
    sse_response,
)
from tests.fakes.received import record

AGENT_FIELDS = frozenset({"input", "instructions", "language_preference", "max_output_tokens", "max_steps", "model",
                          "models", "preset", "reasoning", "response_format", "stream", "stream_options", "tools",
                          "tool_choice", "temperature", "top_p", "parallel_tool_calls"})
RESULTS = [{"id": 1, "url": "https://example.org/paris", "title": "Paris", "snippet": "Paris is the capital.",
            "date": "2026-01-02", "source": "web"},
           {"id": 2, "url": "https://example.org/france", "title": "France", "snippet": "France is a country.",
            "source": "web"}]


def pplx_error(status: int, message: str, type_: str = "invalid_request", code: Any = None,
               param: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": type_ or "invalid_request", "code": status}
    if param:
        error["param"] = param
    return {"error": error}


def check_sonar_roles(body: dict[str, Any]) -> tuple[int, Any] | None:
    roles = [m.get("role") for m in body["messages"] if m.get("role") not in ("system",)]
    for previous, current in zip(roles, roles[1:]):
        if previous == current or current not in ("user", "assistant"):
            return 400, pplx_error(400, "After the (optional) system message(s), user and assistant roles should be "
                                        "alternating.", "invalid_message")
    return None


def sonar_chunks(events: list[Any]) -> list[Any]:
    """Sonar chunks also carry the cumulative message so far."""
    text = ""
    for event in events:
        for choice in event.get("choices") or []:
            text += choice["delta"].get("content") or ""
            choice["message"] = {"role": "assistant", "content": text}
    return events


SONAR = Dialect("perplexity", "perplexity", ("sonar", "sonar-pro"), error_body=pplx_error, stream_done=False,
                stream_usage="every_chunk", validate=check_sonar_roles, prefix="", decorate_chunks=sonar_chunks,
                extra={"citations": [r["url"] for r in RESULTS],
                       "search_results": [{k: r[k] for k in ("title", "url", "date") if k in r} for r in RESULTS]})


# -- Agent API checks -------------------------------------------------------------------------------

def _refuse(message: str, param: str | None = None, type_: str = "invalid_request") -> tuple[int, Any]:
    return 400, pplx_error(400, message, type_, param=param)


def check_agent(body: Any) -> tuple[int, Any] | None:
    if not isinstance(body, dict):
        return _refuse("invalid request body")
    for name in body:
        if name not in AGENT_FIELDS:
            return _refuse(f'invalid request body: json: unknown field "{name}"', name)
    if not body.get("model") and not body.get("preset") and not body.get("models"):
        return _refuse("one of model, models or preset is required", "model")
    model = body.get("model")
    if model is not None and ("/" not in model or model == "perplexity/sonar-pro"):
        return _refuse(f"model '{model}' is not supported", "model", "invalid_model")
    if body.get("max_output_tokens") is not None and body["max_output_tokens"] < 1:
        return _refuse("max_output_tokens must be at least 1", "max_output_tokens")
    for tool in body.get("tools") or []:
        if tool.get("type") not in ("function", "web_search", "fetch_url"):
            return _refuse(f"unknown tool type {tool.get('type')!r}", "tools")
        if tool.get("type") == "function" and (not tool.get("name") or "function" in tool):
            return _refuse('invalid request body: json: unknown field "function"' if "function" in tool
                           else "function tools need a name", "tools")
    return _check_input(body.get("input"))


def _check_input(items: Any) -> tuple[int, Any] | None:
    if isinstance(items, str):
        return None if items else _refuse("input must not be empty", "input")
    if not isinstance(items, list) or not items:
        return _refuse("input is required", "input")
    calls: set[str] = set()
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system", "developer") or "content" not in item:
                return _refuse("message items need a role and content", "input")
            content = item["content"]
            if isinstance(content, list) and any(p.get("type") not in ("input_text", "input_image") for p in content):
                return _refuse("content parts must be input_text or input_image", "input")
        elif kind == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                return _refuse("function_call items need call_id, name and arguments (a string)", "input")
            calls.add(item["call_id"])
        elif kind == "function_call_output":
            if item.get("call_id") not in calls or not isinstance(item.get("output"), str):
                return _refuse("function_call_output must answer an earlier function_call", "input")
        else:
            return _refuse(f"unknown input item type {kind!r}", "input")
    return None


# -- Agent API answers ------------------------------------------------------------------------------

def _last_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    last = items[-1]
    content = last.get("content") if last.get("type") == "message" else last.get("output")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content)
    return str(content or "")


def agent_output(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body["input"]
    last = items if isinstance(items, str) else items[-1]
    tools = body.get("tools") or []
    functions = [t for t in tools if t.get("type") == "function"]
    user_turn = isinstance(last, str) or last.get("type") == "message"
    if functions and user_turn and body.get("tool_choice") != "none":
        return [{"type": "function_call", "id": "fc_1", "status": "completed", "name": functions[0]["name"],
                 "call_id": "call_pplx_1", "arguments": '{"city": "Paris"}'}]
    text = _last_text(items)
    answer = f"The tool said: {text}" if not user_turn else f"Hello from perplexity agent! You said: {text}"
    output: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    if any(t.get("type") == "web_search" for t in tools) or body.get("preset"):
        output.append({"type": "search_results", "queries": [text], "results": RESULTS})
        annotations = [{"type": "url_citation", "url": r["url"], "title": r["title"], "start_index": 0,
                        "end_index": 5} for r in RESULTS]
    output.append({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": answer, "annotations": annotations}]})
    return output


def agent_response(body: dict[str, Any]) -> dict[str, Any]:
    text = _last_text(body["input"])
    output = agent_output(body)
    words = sum(len(p.get("text", "").split()) for o in output for p in o.get("content") or [])
    usage = {"input_tokens": len(text.split()) + 2, "output_tokens": words + 1,
             "total_tokens": len(text.split()) + words + 3,
             "cost": {"currency": "USD", "input_cost": 0.0001, "output_cost": 0.0002, "total_cost": 0.0003}}
    response: dict[str, Any] = {"id": "resp_fake", "object": "response", "created_at": CREATED,
                                "completed_at": CREATED + 1, "status": "completed",
                                "model": body.get("model") or "perplexity/sonar", "output": output, "usage": usage}
    if "FAIL_ME" in text:
        response.update(status="failed", output=[], error={"code": "server_error", "message": "the model failed"})
    elif "CANCEL_ME" in text:
        response.update(status="cancelled", output=[])
    elif "TRUNCATE_ME" in text:
        response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    return response


def agent_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The typed event sequence for a finished response."""
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    shell = {**response, "status": "in_progress", "output": [], "completed_at": None}
    emit("response.created", response=shell)
    emit("response.in_progress", response=shell)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            started = {**item, "status": "in_progress", "content": []}
            emit("response.output_item.added", output_index=index, item=started)
            text = item["content"][0]["text"]
            for start in range(0, len(text), 12):
                emit("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                     delta=text[start:start + 12])
            emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=text)
        elif item["type"] == "function_call":
            emit("response.output_item.added", output_index=index, item={**item, "status": "in_progress",
                                                                          "arguments": ""})
            args = item["arguments"]
            for part in (args[:6], args[6:]):
                emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=part)
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    terminal = {"completed": "response.completed", "failed": "response.failed", "cancelled": "response.cancelled",
                "incomplete": "response.incomplete"}[response["status"]]
    emit(terminal, response=response)
    return events


def make_app(keys: tuple[str, ...] = ("test-key",)) -> Starlette:
    state = FakeState(keys)

    async def agent(request: Request) -> Response:
        body = await record(request, state.received)
        if not authorised(SONAR, state, request.headers):
            return json_response(401, pplx_error(401, "Invalid API key", "forbidden"))
        problem = check_agent(body)
        if problem:
            return json_response(*problem)
        reply = state.next_reply()
        if reply is not None:
            return render(reply, bool(body.get("stream")))
        response = agent_response(body)
        if body.get("stream"):
            return sse_response(agent_events(response), done=False)
        return json_response(200, response)

    async def sonar(request: Request) -> Response:
        return await chat_endpoint(SONAR, state, request)

    async def models(request: Request) -> Response:
        await record(request, state.received)  # no auth needed
        reply = state.next_reply()
        if reply is not None:
            return render(reply, False)
        data = [{"id": m, "object": "model", "created": CREATED, "owned_by": m.split("/")[0]}
                for m in ("perplexity/sonar", "openai/gpt-5.1", "anthropic/claude-sonnet-4-5")]
        return json_response(200, {"object": "list", "data": data})

    return fake_app([
        Route("/v1/agent", agent, methods=["POST"]),
        Route("/v1/responses", agent, methods=["POST"]),
        Route("/chat/completions", sonar, methods=["POST"]),
        Route("/v1/chat/completions", sonar, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ], state)
