"""A strict fake of the Gemini (Generative Language) API, served on a real socket by ``FakeServer``.

Routes (``{version}`` is ``v1beta`` or ``v1``; the last path segment is ``{model}:{method}``)::

    POST /{version}/models/{model}:generateContent
    POST /{version}/models/{model}:streamGenerateContent?alt=sse   (alt=sse required)
    POST /{version}/models/{model}:batchEmbedContents
    POST /{version}/models/{model}:embedContent
    GET  /{version}/models?pageSize=&pageToken=

Auth is ``x-goog-api-key`` or ``?key=``: none -> 403 PERMISSION_DENIED, a wrong key -> 400
INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID (what Google sends). Bodies are validated
the way the real API does (camelCase names only; unknown fields, empty parts, roles that do not
alternate, function-call/response turns that do not pair up, a function call whose
``thoughtSignature`` the fake issued coming back missing or changed) and rejected with Google's
error envelope. An input longer than ``max_input_tokens`` words gets Gemini's context-length 400.

Tests script answers with ``Reply`` objects (``fake.replies.append(...)``): text, function calls
(the first call of a turn carries a thoughtSignature, as Gemini 3 does), a blocked prompt, an
error status/body/headers, a stream cut off (``cut="clean"`` ends the body early, ``cut="abort"``
drops the connection) or an error event inside the stream. Every request is recorded in
``fake.received`` (also ``app.state.received``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.received import Received, record

MODELS = [
    {"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash", "inputTokenLimit": 1048576,
     "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"]},
    {"name": "models/gemini-3-pro-preview", "displayName": "Gemini 3 Pro Preview", "inputTokenLimit": 1048576,
     "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"], "thinking": True},
    {"name": "models/gemini-embedding-001", "displayName": "Gemini Embedding 001", "inputTokenLimit": 2048,
     "outputTokenLimit": 1, "supportedGenerationMethods": ["embedContent", "countTokens"]},
]
DEFAULT_TEXT = "Hello from the fake Gemini."
TOP_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
              "cachedContent"}
GENERATION_FIELDS = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "seed",
                     "presencePenalty", "frequencyPenalty", "responseMimeType", "responseSchema",
                     "responseJsonSchema", "responseModalities", "thinkingConfig", "responseLogprobs", "logprobs",
                     "mediaResolution", "speechConfig", "enableEnhancedCivicAnswers"}
DATA_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
               "codeExecutionResult"}
PART_EXTRAS = {"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
FREE_FORM = {"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema"}
FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")
MISSING_SIGNATURE = ("Function call is missing a thought_signature in functionCall parts. This is required for "
                     "tools to work correctly, and missing thought_signature may lead to degraded model "
                     "performance. Additional data, function call `default_api:{name}` , position {pos}. Please "
                     "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "INVALID_ARGUMENT", reason: str | None = None):
        super().__init__(message)
        self.response = error_response(status, code, message, reason)


@dataclass
class Reply:
    """One scripted answer (used by the next request that reaches a model route)."""

    text: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "args", "id"?}]
    finish: str = "STOP"
    thoughts: str | None = None  # a thought-summary part (thought: true) before the answer
    usage: dict[str, Any] | None = None  # usageMetadata to send instead of the computed one
    block: str | None = None  # promptFeedback.blockReason, no candidates
    status: int = 200
    body: Any = None  # the error body when status >= 400
    headers: dict[str, str] = field(default_factory=dict)
    cut: str | None = None  # "clean" | "abort": the stream stops after its first event
    stream_error: dict[str, Any] | None = None  # an {"error": ...} event sent after the first event


def error_body(code: int, status: str, message: str, reason: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return {"error": error}


def error_response(code: int, status: str, message: str, reason: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(error_body(code, status, message, reason)), status_code=code,
                    media_type="application/json", headers=headers)


class GeminiFake:
    def __init__(self, api_key: str = "test-gemini-key", *, signatures: bool = True, crlf: bool = True,
                 max_input_tokens: int = 1_000_000) -> None:
        self.api_key = api_key
        self.signatures = signatures
        self.newline = "\r\n" if crlf else "\n"
        self.max_input_tokens = max_input_tokens
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self.issued: dict[str, str] = {}  # signature -> the call it was issued with (name + args JSON)
        self._serial = 0
        self.app = Starlette(routes=[
            Route("/{version}/models", self.list_models, methods=["GET"]),
            Route("/{version}/models/{target}", self.model_method, methods=["POST"]),
        ])
        self.app.state.received = self.received
        self.url: str | None = None  # set while served (tests.fakes.server.serve_fake)

    def reset(self) -> None:
        self.replies.clear()
        self.received.clear()

    # -- plumbing ---------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise BadRequest("Method doesn't allow unregistered callers (callers without established identity). "
                             "Please use API Key or other form of API consumer identity to call this API.",
                             403, "PERMISSION_DENIED")
        if key != self.api_key:
            raise BadRequest("API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")

    def _signature(self, key: str) -> str:
        self._serial += 1
        signature = base64.b64encode(hashlib.sha256(f"{key}#{self._serial}".encode()).digest() * 2).decode()
        self.issued[signature] = key
        return signature

    # -- routes -----------------------------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        await record(request, self.received)
        try:
            self._authenticate(request)
        except BadRequest as exc:
            return exc.response
        size = int(request.query_params.get("pageSize") or 50)
        start = int(request.query_params.get("pageToken") or 0)
        page: dict[str, Any] = {"models": MODELS[start:start + size]}
        if start + size < len(MODELS):
            page["nextPageToken"] = str(start + size)
        return Response(orjson.dumps(page), media_type="application/json")

    async def model_method(self, request: Request) -> Response:
        body = await record(request, self.received)
        model, _, method = request.path_params["target"].partition(":")
        try:
            if request.path_params["version"] not in ("v1beta", "v1"):
                raise BadRequest("Not Found", 404, "NOT_FOUND")
            self._authenticate(request)
            if not isinstance(body, dict):
                raise BadRequest("Invalid JSON payload received. Expected an object.")
            body = camel(body)
            if method in ("batchEmbedContents", "embedContent"):
                return embed(model, method, body)
            if method not in ("generateContent", "streamGenerateContent"):
                raise BadRequest(f"Method not found: {method}", 404, "NOT_FOUND")
            if f"models/{model}" not in {m["name"] for m in MODELS}:
                raise BadRequest(f"models/{model} is not found for API version v1beta, or is not supported for "
                                 f"{method}. Call ListModels to see the list of available models and their "
                                 "supported methods.", 404, "NOT_FOUND")
            if method == "streamGenerateContent" and request.query_params.get("alt") != "sse":
                raise BadRequest("this fake only streams with alt=sse")
            self._validate(body)
        except BadRequest as exc:
            return exc.response
        reply = self.replies.popleft() if self.replies else Reply()
        if reply.status >= 400:
            return Response(orjson.dumps(reply.body or error_body(reply.status, "INTERNAL", "scripted error")),
                            status_code=reply.status, media_type="application/json", headers=reply.headers)
        answers = self._answers(model, body, reply)
        if method == "generateContent":
            return Response(orjson.dumps(answers[-1] | _merged(answers)), media_type="application/json")
        return StreamingResponse(self._stream(answers, reply), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    # -- validation -------------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> None:
        unknown(body, TOP_FIELDS, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
        previous: dict[str, Any] | None = None
        for i, content in enumerate(contents):
            role = content.get("role", "user") if isinstance(content, dict) else None
            if role not in ("user", "model"):
                raise BadRequest("Please use a valid role: user, model.")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                raise BadRequest(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
            for j, part in enumerate(parts):
                check_part(part, f"contents[{i}].parts[{j}]", role)
            if previous is not None and previous.get("role", "user") == role:
                raise BadRequest("Please ensure that multiturn requests alternate between user and model.")
            self._check_pairing(previous, content)
            previous = content
        system = body.get("systemInstruction")
        if system is not None:
            if not isinstance(system, dict) or not system.get("parts"):
                raise BadRequest("* GenerateContentRequest.system_instruction.parts: must not be empty")
            for j, part in enumerate(system["parts"]):
                check_part(part, f"systemInstruction.parts[{j}]", "user")
        check_tools(body.get("tools"), body.get("toolConfig"))
        check_generation(body.get("generationConfig"))
        words = sum(len(str(p.get("text", "")).split()) for c in contents for p in c["parts"])
        if words > self.max_input_tokens:
            raise BadRequest(f"The input token count ({words}) exceeds the maximum number of tokens allowed "
                             f"({self.max_input_tokens}).")

    def _check_pairing(self, previous: dict[str, Any] | None, content: dict[str, Any]) -> None:
        calls = [p["functionCall"] for p in (previous or {}).get("parts", []) if "functionCall" in p]
        responses = [p["functionResponse"] for p in content["parts"] if "functionResponse" in p]
        if content.get("role") == "model":
            for pos, part in enumerate(content["parts"]):
                if "functionCall" in part:
                    if previous is None:
                        raise BadRequest("Please ensure that function call turn comes immediately after a user "
                                         "turn or after a function response turn.")
                    self._check_signature(part, pos + 1)
            return
        if not responses:
            return
        if len(responses) != len(calls):
            raise BadRequest("Please ensure that the number of function response parts is equal to the number of "
                             "function call parts of the function call turn.")
        if sorted(r["name"] for r in responses) != sorted(c["name"] for c in calls):
            raise BadRequest("Please ensure that function response names match the function call names.")

    def _check_signature(self, part: dict[str, Any], position: int) -> None:
        call = part["functionCall"]
        key = call_key(call)
        signature = part.get("thoughtSignature")
        if signature is not None and self.issued.get(signature) != key:
            raise BadRequest("Corrupted thought signature.")
        if signature is None and key in self.issued.values():
            raise BadRequest(MISSING_SIGNATURE.format(name=call["name"], pos=position))

    # -- answers ----------------------------------------------------------------------------------

    def _answers(self, model: str, body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
        """The answer as a list of stream events (generateContent merges them into one)."""
        common = {"modelVersion": model, "responseId": f"resp-{len(self.received)}"}
        prompt = sum(len(str(p.get("text", "")).split()) for c in body["contents"] for p in c["parts"]) or 1
        if reply.block:
            return [{"promptFeedback": {"blockReason": reply.block},
                     "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}, **common}]
        generation = body.get("generationConfig") or {}
        text = reply.text if reply.text is not None or reply.calls else DEFAULT_TEXT
        words = (text or "").split(" ") if text else []
        finish = reply.finish
        limit = generation.get("maxOutputTokens")
        if limit and len(words) > limit:
            words, finish = words[:limit], "MAX_TOKENS"
        pieces: list[list[dict[str, Any]]] = []
        if reply.thoughts:
            pieces.append([{"text": reply.thoughts, "thought": True}])
        for k in range(0, len(words), 2):
            pieces.append([{"text": (" " if k else "") + " ".join(words[k:k + 2])}])
        if reply.calls:
            pieces.append(self._call_parts(reply.calls))
        elif self.signatures:
            pieces.append([{"text": "", "thoughtSignature": self._signature("text")}])
        thoughts = len(reply.thoughts.split()) if reply.thoughts else 0
        usage = reply.usage or {"promptTokenCount": prompt, "candidatesTokenCount": len(words),
                                "totalTokenCount": prompt + len(words) + thoughts,
                                **({"thoughtsTokenCount": thoughts} if thoughts else {})}
        count = int(generation.get("candidateCount") or 1)
        events = []
        for k, parts in enumerate(pieces):
            last = k == len(pieces) - 1
            candidates = [{"content": {"role": "model", "parts": parts}, "index": i,
                           **({"finishReason": finish} if last else {})} for i in range(count)]
            meta = usage if last else {"promptTokenCount": prompt, "totalTokenCount": prompt}
            events.append({"candidates": candidates, "usageMetadata": meta, **common})
        return events

    def _call_parts(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parts = []
        for k, call in enumerate(calls):
            function_call = {"name": call["name"], "args": call.get("args", {})}
            if call.get("id"):
                function_call["id"] = call["id"]
            part: dict[str, Any] = {"functionCall": function_call}
            if self.signatures and k == 0:  # Gemini 3 signs only the first call of a parallel set
                part["thoughtSignature"] = self._signature(call_key(function_call))
            parts.append(part)
        return parts

    async def _stream(self, events: list[dict[str, Any]], reply: Reply):
        end = self.newline * 2
        for k, event in enumerate(events):
            yield f"data: {orjson.dumps(event).decode()}{end}".encode()
            if k == 0 and reply.stream_error:
                yield f"data: {orjson.dumps({'error': reply.stream_error}).decode()}{end}".encode()
                return
            if k == 0 and reply.cut == "clean":
                return
            if k == 0 and reply.cut == "abort":
                raise ConnectionAbortedError("the fake dropped the stream on purpose")


def _merged(events: list[dict[str, Any]]) -> dict[str, Any]:
    """One generateContent answer from the stream events: every event's parts, the last's metadata."""
    if "candidates" not in events[-1]:
        return {}
    candidates = []
    for candidate in events[-1]["candidates"]:
        parts = [p for e in events for c in e["candidates"] if c["index"] == candidate["index"]
                 for p in c["content"]["parts"]]
        thoughts = [p for p in parts if p.get("thought")]
        texts = [p for p in parts if "text" in p and not p.get("thought") and not p.get("thoughtSignature")]
        others = [p for p in parts if p not in texts and p not in thoughts]
        merged = thoughts + ([{"text": "".join(p["text"] for p in texts)}] if texts else []) + others
        candidates.append({**candidate, "content": {"role": "model", "parts": merged}})
    return {"candidates": candidates}


def camel(value: Any, key: str = "") -> Any:
    """Proto JSON accepts snake_case names too (the SDK sends some): normalise to camelCase, leaving
    free-form values (function args/responses, schemas) alone."""
    if key in FREE_FORM:
        return value
    if isinstance(value, list):
        return [camel(item, key) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for name, item in value.items():
        name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
        out[name] = camel(item, name)
    return out


def call_key(call: dict[str, Any]) -> str:
    return call["name"] + orjson.dumps(call.get("args") or {}, option=orjson.OPT_SORT_KEYS).decode()


def unknown(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    for name in obj:
        if name not in allowed:
            raise BadRequest(f'Invalid JSON payload received. Unknown name "{name}" at \'{where}\': Cannot find field.')


def check_part(part: Any, where: str, role: str) -> None:
    if not isinstance(part, dict):
        raise BadRequest(f"Invalid value at '{where}': expected an object")
    unknown(part, DATA_FIELDS | PART_EXTRAS, where)
    kinds = [k for k in part if k in DATA_FIELDS]
    if len(kinds) != 1:
        raise BadRequest(f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
                         "initialized field")
    value = part[kinds[0]]
    if kinds[0] == "inlineData":
        if not value.get("mimeType") or not value.get("data"):
            raise BadRequest(f"* GenerateContentRequest.{where}.inline_data: mimeType and data are required")
        try:
            base64.b64decode(value["data"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed") \
                from None
    elif kinds[0] == "fileData" and not value.get("fileUri"):
        raise BadRequest(f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is required")
    elif kinds[0] == "functionCall" and (role != "model" or not value.get("name")):
        raise BadRequest(f"* GenerateContentRequest.{where}.function_call: a named call in a model turn is required")
    elif kinds[0] == "functionResponse":
        if role != "user" or not value.get("name") or not isinstance(value.get("response"), dict):
            raise BadRequest(f"* GenerateContentRequest.{where}.function_response.name: name and an object "
                             "response are required in a user turn")


def check_tools(tools: Any, tool_config: Any) -> set[str]:
    declared: set[str] = set()
    for tool in tools or []:
        unknown(tool, {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}, "tools")
        for declaration in tool.get("functionDeclarations") or []:
            unknown(declaration, {"name", "description", "parameters", "parametersJsonSchema", "response",
                                  "responseJsonSchema", "behavior"}, "function_declarations")
            if not FUNCTION_NAME.match(str(declaration.get("name") or "")):
                raise BadRequest("* GenerateContentRequest.tools[0].function_declarations.name: Invalid function "
                                 "name. Must start with a letter or an underscore.")
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise BadRequest("parameters and parametersJsonSchema cannot both be set")
            declared.add(declaration["name"])
    if tool_config is not None:
        unknown(tool_config, {"functionCallingConfig", "retrievalConfig"}, "tool_config")
        config = tool_config.get("functionCallingConfig") or {}
        unknown(config, {"mode", "allowedFunctionNames", "streamFunctionCallArguments"}, "function_calling_config")
        if config.get("mode", "AUTO") not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
            raise BadRequest(f"Invalid value at 'tool_config.function_calling_config.mode': {config.get('mode')}")
        names = config.get("allowedFunctionNames")
        if names and (config.get("mode") not in ("ANY", "VALIDATED") or not set(names) <= declared):
            raise BadRequest("allowed_function_names is only allowed when mode is ANY and the names are declared")
    return declared


def check_generation(config: Any) -> None:
    if config is None:
        return
    unknown(config, GENERATION_FIELDS, "generation_config")
    if not 1 <= int(config.get("candidateCount", 1)) <= 8:
        raise BadRequest("* GenerateContentRequest.generation_config.candidate_count: must be in [1, 8]")
    if not 0 <= float(config.get("temperature", 1)) <= 2:
        raise BadRequest("* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]")
    if len(config.get("stopSequences") or []) > 5:
        raise BadRequest("* GenerateContentRequest.generation_config.stop_sequences: at most 5 sequences")
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise BadRequest("responseSchema and responseJsonSchema cannot both be set")
    if ("responseSchema" in config or "responseJsonSchema" in config) \
            and config.get("responseMimeType") != "application/json":
        raise BadRequest("* GenerateContentRequest.generation_config.response_mime_type: must be application/json "
                         "when a response schema is set")


def embed(model: str, method: str, body: dict[str, Any]) -> Response:
    if method == "embedContent":
        return Response(orjson.dumps({"embedding": {"values": _embed_one(body, "")}}), media_type="application/json")
    unknown(body, {"requests"}, "")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests or len(requests) > 100:
        raise BadRequest("* BatchEmbedContentsRequest.requests: between 1 and 100 requests are required")
    for i, item in enumerate(requests):
        if item.get("model") != f"models/{model}":
            raise BadRequest(f"* BatchEmbedContentsRequest.requests[{i}].model: must be models/{model}")
    values = [{"values": _embed_one(item, f"requests[{i}]")} for i, item in enumerate(requests)]
    return Response(orjson.dumps({"embeddings": values}), media_type="application/json")


def _embed_one(request: dict[str, Any], where: str) -> list[float]:
    unknown(request, {"model", "content", "taskType", "title", "outputDimensionality"}, where)
    parts = (request.get("content") or {}).get("parts") or []
    text = "".join(str(p.get("text", "")) for p in parts)
    if not text:
        raise BadRequest(f"* {where}.content.parts: a text part is required")
    dims = int(request.get("outputDimensionality") or 8)
    digest = hashlib.sha256(text.encode()).digest() * (dims // 32 + 1)
    return [(b - 128) / 128 for b in digest[:dims]]  # exact in float32, so base64 round-trips
