"""A fake Azure OpenAI resource: the classic deployment API (``/openai/deployments/{deployment}/...``
with a required ``api-version``) and the v1 API (``/openai/v1/...``, the deployment as ``model``).

Auth is the ``api-key`` header or ``Authorization: Bearer <Entra token>``. Answers carry Azure's
content-filter annotations: ``prompt_filter_results`` at the top, ``content_filter_results`` on
choices; streams open with a chunk whose ``choices`` is empty (prompt filter results only) and hold a
chunk whose choice has no ``delta`` (asynchronous filtering). A user message containing ``FILTER_ME``
is refused with Azure's 400 ``content_filter`` error; one containing ``FILTER_OUTPUT`` ends with
``finish_reason: content_filter``. Script other behaviour with ``app.state.fake.push(Reply(...))``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.openai_family import (
    CREATED,
    Dialect,
    FakeState,
    answer,
    check_chat,
    completion,
    embeddings_answer,
    fake_app,
    json_response,
    render,
    sse_response,
    stream_chunks,
    text_of,
    usage_for,
)
from tests.fakes.received import record

DEPLOYMENTS = {"gpt-4o-prod": "gpt-4o-2024-08-06", "embed-prod": "text-embedding-3-small"}
API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
SAFE = {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")}


def azure_error(status: int, message: str, type_: str = "", code: Any = None, param: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code or str(status), "message": message}
    if param:
        error["param"] = param
    return {"error": error}


def content_filter_error() -> dict[str, Any]:
    result = {**SAFE, "hate": {"filtered": True, "severity": "high"}}
    return {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                                 "management policy.", "type": None, "param": "prompt", "code": "content_filter",
                      "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                    "content_filter_result": result}}}


AZURE = Dialect("azure", "azure", tuple(DEPLOYMENTS.values()), error_body=azure_error, prefix="/openai/v1")
DEPLOYMENT_MISSING = ("The API deployment for this resource does not exist. If you created the deployment within "
                      "the last 5 minutes, please wait a moment and try again.")
AUTH_ERROR = azure_error(401, "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                              "provide a valid key for an active subscription and use a correct regional API "
                              "endpoint for your resource.", code="401")


class AzureState(FakeState):
    def __init__(self, keys: tuple[str, ...] = ("test-key",), tokens: tuple[str, ...] = ("test-ad-token",)) -> None:
        super().__init__(keys)
        self.tokens = set(tokens)

    def authorised(self, headers: Any) -> bool:
        if headers.get("api-key") in self.keys:
            return True
        return headers.get("authorization", "") in {f"Bearer {t}" for t in self.tokens}


def _decorate(body: dict[str, Any]) -> dict[str, Any]:
    body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": SAFE}]
    for choice in body["choices"]:
        choice["content_filter_results"] = SAFE
        choice["message"].pop("refusal", None)  # older api-versions leave it out
    return body


def _decorate_stream(chunks: list[dict[str, Any]]) -> list[Any]:
    first = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
             "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": SAFE}]}
    out: list[Any] = [first]
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["finish_reason"] is not None:  # asynchronous filtering: a choice without a delta
                out.append({**chunk, "choices": [{"index": 0, "finish_reason": None, "content_filter_results": SAFE,
                                                   "content_filter_offsets": {"check_offset": 0, "start_offset": 0,
                                                                              "end_offset": 20}}]})
            elif "content" in choice["delta"]:
                choice["content_filter_results"] = SAFE
        out.append(chunk)
    return out


def _answer(state: AzureState, body: dict[str, Any], model: str) -> Response:
    text = text_of(body["messages"][-1].get("content"))
    if "FILTER_ME" in text:
        return json_response(400, content_filter_error())
    reply = state.next_reply()
    if reply is not None and (reply.body is not None or reply.chunks is not None or reply.status != 200):
        return render(reply, bool(body.get("stream")))
    content, tool_calls = answer(AZURE, body)
    finish = None
    if "FILTER_OUTPUT" in text:
        content, finish = None, "content_filter"
    usage = usage_for(body, content)
    if body.get("stream"):
        chunks = stream_chunks(AZURE, body, model, content, tool_calls, usage, finish)
        return sse_response(_decorate_stream(chunks))
    return json_response(200, _decorate(completion(AZURE, model, content, tool_calls, usage, finish)))


def make_app(keys: tuple[str, ...] = ("test-key",), tokens: tuple[str, ...] = ("test-ad-token",)) -> Starlette:
    state = AzureState(keys, tokens)

    async def guard(request: Request) -> tuple[Any, Response | None]:
        body = await record(request, state.received)
        if not state.authorised(request.headers):
            return body, json_response(401, AUTH_ERROR)
        if request.url.path.startswith("/openai/v1/"):
            return body, None
        version = request.query_params.get("api-version")
        if not version or not API_VERSION.fullmatch(version):
            return body, json_response(404, azure_error(404, "Resource not found"))
        return body, None

    async def guard_deployment(request: Request, missing: str) -> tuple[Any, str | None, Response | None]:
        """``guard``, then the deployment's model (from the path, or ``model`` on the v1 API): 404 if unknown."""
        body, refused = await guard(request)
        if refused:
            return body, None, refused
        if "deployment" in request.path_params:
            model = DEPLOYMENTS.get(request.path_params["deployment"])
        else:
            model = DEPLOYMENTS.get(body.get("model")) if isinstance(body, dict) else None
        if model is None:
            return body, None, json_response(404, azure_error(404, missing, code="DeploymentNotFound"))
        return body, model, None

    async def chat(request: Request) -> Response:
        body, model, refused = await guard_deployment(request, DEPLOYMENT_MISSING)
        if refused:
            return refused
        problem = check_chat(AZURE, {**body, "model": model} if isinstance(body, dict) else body)
        return json_response(*problem) if problem else _answer(state, body, model)

    async def embeddings(request: Request) -> Response:
        body, model, refused = await guard_deployment(request, "deployment not found")
        if refused:
            return refused
        reply = state.next_reply()
        if reply is not None:
            return render(reply, False)
        return json_response(*embeddings_answer(AZURE, body if isinstance(body, dict) else {}, model))

    async def models(request: Request) -> Response:
        _, refused = await guard(request)
        if refused:
            return refused
        reply = state.next_reply()
        if reply is not None:
            return render(reply, False)
        data = [{"id": m, "status": "succeeded", "created_at": CREATED, "object": "model",
                 "capabilities": {"chat_completion": "embedding" not in m, "embeddings": "embedding" in m},
                 "lifecycle_status": "generally-available"} for m in DEPLOYMENTS.values()]
        return json_response(200, {"object": "list", "data": data})

    return fake_app([
        Route("/openai/deployments/{deployment}/chat/completions", chat, methods=["POST"]),
        Route("/openai/deployments/{deployment}/embeddings", embeddings, methods=["POST"]),
        Route("/openai/models", models, methods=["GET"]),
        Route("/openai/v1/chat/completions", chat, methods=["POST"]),
        Route("/openai/v1/embeddings", embeddings, methods=["POST"]),
        Route("/openai/v1/models", models, methods=["GET"]),
    ], state)
