"""A fake Replicate API (predictions, polling, SSE streams, models) on real HTTP.

It checks what it receives like the real API: a ``Bearer`` (or legacy ``Token``) key, a JSON body
with an ``input`` object, a ``version`` on ``POST /v1/predictions``, input names the model's schema
knows (422 otherwise), and answers with Replicate's bodies (predictions; errors as RFC 7807 problem
details). ``urls.get`` / ``urls.stream`` point back at the fake's own host. ``Prefer: wait`` returns a
finished prediction; without it, or when a reply is scripted with ``polls=N``, the prediction stays
``processing`` for N more GETs. Stream events carry ``id:`` lines and ``event: output|error|done``.

    fake = ReplicateFake()
    with FakeServer(fake.app) as server:
        fake.reply("Hello", metrics=None)          # next prediction: no token counts reported
        replicate.Client(api_token="r8_x", base_url=server.url).run("meta/meta-llama-3-8b-instruct", ...)
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.received import Received, record

LLAMA_INPUTS = {"prompt", "system_prompt", "max_tokens", "min_tokens", "temperature", "top_p", "top_k",
                "stop_sequences", "seed", "presence_penalty", "frequency_penalty", "prompt_template"}
MODELS: dict[str, dict[str, Any]] = {
    "meta/meta-llama-3-8b-instruct": {"inputs": LLAMA_INPUTS, "required": {"prompt"}, "metrics": True,
                                      "version": "5a6809ca6288247d06daf6365557e5e429063f32a21146b2a807c682652136b8"},
    "acme/quiet-llm": {"inputs": LLAMA_INPUTS | {"max_new_tokens"}, "required": {"prompt"}, "metrics": False,
                       "version": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
    "yorickvp/llava-13b": {"inputs": {"image", "prompt", "max_tokens", "temperature", "top_p"},
                           "required": {"prompt", "image"}, "metrics": True,
                           "version": "80537f9eead1a5bfa72d5ac6ea6414379be41d4d4f6679fd776e9535d1eb58bb"},
    "openai/gpt-4o-mini": {"inputs": {"prompt", "system_prompt", "messages", "image_input", "max_completion_tokens",
                                      "temperature", "top_p", "presence_penalty", "frequency_penalty"},
                           "required": set(), "metrics": True,
                           "version": "b0c5ac5e1b1e2cb5bcfc2bd7a6a1c0a2f1ab1a2cf2b0c9c0c2a1fa1b2c3d4e5f"},
}
CREATE_FIELDS = {"input", "stream", "webhook", "webhook_events_filter", "webhook_completed", "version"}


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": f"https://replicate.com/docs/reference/http#{status}", "title": title, "status": status,
            "detail": detail}
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json", headers=headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    script: dict[str, Any]
    base: str
    status: str = "starting"
    polls_left: int = 0

    def finish(self) -> None:
        self.status = self.script.get("status") or "succeeded"

    def body(self) -> dict[str, Any]:
        done = self.status in ("succeeded", "failed", "canceled")
        out: dict[str, Any] = {
            "id": self.id, "model": self.model, "version": self.version, "status": self.status,
            "input": self.input, "logs": "", "error": None, "output": None, "data_removed": False,
            "created_at": "2026-01-01T00:00:00.000Z", "started_at": None, "completed_at": None,
            "urls": {"get": f"{self.base}/v1/predictions/{self.id}",
                     "cancel": f"{self.base}/v1/predictions/{self.id}/cancel",
                     "stream": f"{self.base}/v1/stream/{self.id}",
                     "web": f"https://replicate.com/p/{self.id}"},
            "metrics": {},
        }
        if self.script.get("no_stream"):
            del out["urls"]["stream"]
        if self.status != "starting":
            out["started_at"] = "2026-01-01T00:00:00.100Z"
        if done:
            out["completed_at"] = "2026-01-01T00:00:01.000Z"
            out["metrics"] = {"predict_time": 0.9, "total_time": 1.0}
        if self.status == "succeeded":
            out["output"] = self.tokens()
            out["metrics"].update(self.metrics())
        elif self.status == "failed":
            out["error"] = self.script.get("error") or "model failed"
        elif self.status == "canceled":
            out["error"] = None
        return out

    def text(self) -> str:
        if self.script.get("text") is not None:
            return self.script["text"]
        messages = self.input.get("messages")
        said = messages[-1]["content"] if messages else self.input.get("prompt", "")
        images = self.input.get("image_input") or ([self.input["image"]] if self.input.get("image") else [])
        return f"Echo: {said}" + (f" [{len(images)} image(s)]" if images else "")

    def tokens(self) -> list[str]:
        words = self.text().split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def metrics(self) -> dict[str, Any]:
        if "metrics" in self.script:
            return self.script["metrics"] or {}
        if not MODELS[self.model]["metrics"]:
            return {}
        prompt = f"{self.input.get('prompt', '')} {self.input.get('system_prompt', '')}"
        return {"input_token_count": max(1, len(prompt.split())), "output_token_count": len(self.tokens()),
                "time_to_first_token": 0.1, "tokens_per_second": 40.0}


class ReplicateFake:
    def __init__(self, valid_keys: set[str] | None = None) -> None:
        self.received: list[Received] = []
        self.script: list[dict[str, Any]] = []
        self.predictions: dict[str, Prediction] = {}
        self.valid_keys = valid_keys
        self.url: str | None = None  # set while served (tests.fakes.server.serve_fake)
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[
            Route("/v1/models/{owner}/{name}/predictions", self.create_for_model, methods=["POST"]),
            Route("/v1/deployments/{owner}/{name}/predictions", self.create_for_model, methods=["POST"]),
            Route("/v1/predictions", self.create_for_version, methods=["POST"]),
            Route("/v1/predictions/{id}", self.get_prediction, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/stream/{id}", self.stream, methods=["GET"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{owner}/{name}", self.get_model, methods=["GET"]),
            Route("/v1/models/{owner}/{name}/versions/{version}", self.get_version, methods=["GET"]),
        ])
        self.app.state.fake = self

    # -- scripting ------------------------------------------------------------------------------

    def reply(self, text: str | None = None, *, status: str = "succeeded", error: str | None = None,
              polls: int = 0, **extra: Any) -> None:
        """The next prediction. ``extra``: metrics (dict or None), cut_after (output events), abort,
        stream_error (detail), done_reason (canceled|error), no_stream."""
        self.script.append({"kind": "reply", "text": text, "status": status, "error": error, "polls": polls,
                            **extra})

    def error(self, status: int, detail: str = "error", headers: dict[str, str] | None = None,
              body: Any = None) -> None:
        """The next HTTP call (create, poll or stream) answers with this error."""
        self.script.append({"kind": "error", "status": status, "detail": detail, "headers": headers or {},
                            "body": body})

    def reset(self) -> None:
        self.script.clear()
        self.received.clear()

    def last(self, path_prefix: str = "") -> Received:
        return [r for r in self.received if r.path.startswith(path_prefix)][-1]

    # -- helpers --------------------------------------------------------------------------------

    async def _enter(self, request: Request) -> Any:
        body = await record(request, self.received)
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme not in ("Bearer", "Token") or not key.strip():
            raise Problem(401, "Unauthenticated", "You did not pass an authentication token")
        if self.valid_keys is not None and key.strip() not in self.valid_keys:
            raise Problem(401, "Invalid token", "You did not pass a valid authentication token")
        if self.script and self.script[0]["kind"] == "error":
            entry = self.script.pop(0)
            if entry["body"] is not None:
                raise ScriptedBody(entry)
            raise Problem(entry["status"], "Scripted error", entry["detail"], entry["headers"])
        return body

    def _guarded(handler):  # noqa: N805 - a decorator over the handlers below
        async def wrapper(self, request: Request) -> Response:
            try:
                return await handler(self, request)
            except ScriptedBody as exc:
                entry = exc.entry
                return json_response(entry["body"], entry["status"], entry["headers"])
            except Problem as exc:
                return problem(exc.status, exc.title, exc.detail, exc.headers)
        return wrapper

    def _pop_reply(self) -> dict[str, Any]:
        if self.script and self.script[0]["kind"] == "reply":
            return self.script.pop(0)
        return {"kind": "reply", "status": "succeeded", "polls": 0}

    # -- predictions ----------------------------------------------------------------------------

    @_guarded
    async def create_for_model(self, request: Request) -> Response:
        body = await self._enter_checked(request)
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if model not in MODELS:
            raise Problem(404, "Not found", "The requested resource could not be found.")
        return self._create(request, model, MODELS[model]["version"], body)

    @_guarded
    async def create_for_version(self, request: Request) -> Response:
        body = await self._enter_checked(request)
        version = body.get("version")
        if not version:
            raise Problem(422, "Input validation failed", "- version: version is required")
        model = next((m for m, spec in MODELS.items() if spec["version"] == version.split(":")[-1]), None)
        if model is None:
            raise Problem(422, "Invalid version or not permitted",
                          "The specified version does not exist (or perhaps you don't have permission to use it?)")
        return self._create(request, model, MODELS[model]["version"], body)

    async def _enter_checked(self, request: Request) -> dict[str, Any]:
        body = await self._enter(request)
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            raise Problem(422, "Input validation failed", "- input: input is required")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise Problem(422, "Input validation failed", f"- (root): Additional property {unknown[0]} is not allowed")
        return body

    def _create(self, request: Request, model: str, version: str, body: dict[str, Any]) -> Response:
        spec = MODELS[model]
        data = body["input"]
        extra = sorted(set(data) - spec["inputs"])
        if extra:
            raise Problem(422, "Input validation failed", f"- input: Additional property {extra[0]} is not allowed")
        missing = sorted(spec["required"] - set(data))
        if missing:
            raise Problem(422, "Input validation failed", f"- input: {missing[0]} is required")
        if "stop_sequences" in data and not isinstance(data["stop_sequences"], str):
            raise Problem(422, "Input validation failed", "- input.stop_sequences: Invalid type. Expected: string")
        if "image_input" in data and not isinstance(data["image_input"], list):
            raise Problem(422, "Input validation failed", "- input.image_input: Invalid type. Expected: array")
        if "image" in data and not isinstance(data["image"], str):
            raise Problem(422, "Input validation failed", "- input.image: Invalid type. Expected: string")
        script = self._pop_reply()
        base = str(request.base_url).rstrip("/")
        prediction = Prediction(id=f"fakepred{next(self._ids):04d}", model=model, version=version, input=data,
                                script=script, base=base, polls_left=int(script.get("polls") or 0))
        self.predictions[prediction.id] = prediction
        wait = request.headers.get("prefer", "").startswith("wait")
        if wait and not body.get("stream") and prediction.polls_left == 0:
            prediction.finish()
        elif wait and not body.get("stream"):
            prediction.status = "processing"
        return json_response(prediction.body(), 201)

    async def _prediction(self, request: Request) -> Prediction:
        """Enter the request, then the prediction its path names (404 if there is none)."""
        await self._enter(request)
        prediction = self.predictions.get(request.path_params["id"])
        if prediction is None:
            raise Problem(404, "Not found", "The requested resource could not be found.")
        return prediction

    @_guarded
    async def get_prediction(self, request: Request) -> Response:
        prediction = await self._prediction(request)
        if prediction.status in ("starting", "processing"):
            if prediction.polls_left > 0:
                prediction.polls_left -= 1
                prediction.status = "processing"
            else:
                prediction.finish()
        return json_response(prediction.body())

    @_guarded
    async def cancel(self, request: Request) -> Response:
        prediction = await self._prediction(request)
        if prediction.status in ("starting", "processing"):
            prediction.status = "canceled"
        return json_response(prediction.body())

    @_guarded
    async def stream(self, request: Request) -> Response:
        prediction = await self._prediction(request)
        if "text/event-stream" not in request.headers.get("accept", ""):
            raise Problem(406, "Not acceptable", "Accept: text/event-stream is required")
        return StreamingResponse(self._events(prediction), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    async def _events(self, prediction: Prediction):
        script = prediction.script
        n = 0

        def frame(event: str, data: str) -> bytes:
            nonlocal n
            n += 1
            lines = "".join(f"data: {line}\n" for line in data.split("\n"))
            return f"event: {event}\nid: 1700000000:{n}\n{lines}\n".encode()

        for i, token in enumerate(prediction.tokens()):
            if script.get("cut_after") is not None and i >= script["cut_after"]:
                if script.get("abort"):
                    raise ConnectionResetError("fake replicate dropped the stream")
                return
            yield frame("output", token)
            await asyncio.sleep(0)
        if script.get("stream_error"):
            prediction.status = "failed"
            yield frame("error", orjson.dumps({"detail": script["stream_error"]}).decode())
            return
        if script.get("done_reason"):
            prediction.status = "canceled" if script["done_reason"] == "canceled" else "failed"
            yield frame("done", orjson.dumps({"reason": script["done_reason"]}).decode())
            return
        prediction.finish()
        yield frame("done", "{}")

    # -- models ---------------------------------------------------------------------------------

    def _model(self, name: str) -> dict[str, Any]:
        owner, _, short = name.partition("/")
        spec = MODELS[name]
        return {"url": f"https://replicate.com/{name}", "owner": owner, "name": short,
                "description": f"fake {short}", "visibility": "public", "github_url": None, "paper_url": None,
                "license_url": None, "run_count": 42, "cover_image_url": None, "default_example": None,
                "latest_version": self._version(spec["version"], spec)}

    @staticmethod
    def _version(version: str, spec: dict[str, Any]) -> dict[str, Any]:
        properties = {name: {"type": "string"} for name in sorted(spec["inputs"])}
        schema = {"openapi": "3.0.2", "components": {"schemas": {
            "Input": {"type": "object", "properties": properties, "required": sorted(spec["required"])},
            "Output": {"type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator",
                       "x-cog-array-display": "concatenate"}}}}
        return {"id": version, "created_at": "2024-04-17T21:44:13.482460Z", "cog_version": "0.9.5",
                "openapi_schema": schema}

    @_guarded
    async def list_models(self, request: Request) -> Response:
        await self._enter(request)
        return json_response({"next": None, "previous": None,
                              "results": [self._model(name) for name in MODELS]})

    @_guarded
    async def get_model(self, request: Request) -> Response:
        await self._enter(request)
        name = f"{request.path_params['owner']}/{request.path_params['name']}"
        if name not in MODELS:
            raise Problem(404, "Not found", "The requested resource could not be found.")
        return json_response(self._model(name))

    @_guarded
    async def get_version(self, request: Request) -> Response:
        await self._enter(request)
        name = f"{request.path_params['owner']}/{request.path_params['name']}"
        spec = MODELS.get(name)
        if spec is None or spec["version"] != request.path_params["version"]:
            raise Problem(404, "Not found", "The requested resource could not be found.")
        return json_response(self._version(spec["version"], spec))


class ScriptedBody(Exception):
    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__("scripted error body")
        self.entry = entry
