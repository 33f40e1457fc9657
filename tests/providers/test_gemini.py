"""Unit tests of the Gemini translation (the golden files under tests/golden/gemini/ cover whole cases)."""

from __future__ import annotations

import base64
from array import array

import orjson
import pytest

from gateway.errors import (
    ContextLengthExceeded,
    InvalidApiKey,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    UnsupportedParameter,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from providers.base import Call, ProviderConfig, UpstreamResponse
from providers.gemini import GeminiProvider
from providers.gemini.response import FINISH_REASONS
from providers.gemini.toolids import make_id, parse_id

pytestmark = pytest.mark.timeout(10)
SIG = "CiQBcsjafBh0u9yX2LMb7ZaVpqKt4EBa/ZgJm5qXNmQ2rB1zMTY="


def provider(**options) -> GeminiProvider:
    drop = options.pop("drop", False)
    defaults = {name: spec.default for name, spec in GeminiProvider.options.items()}
    return GeminiProvider(ProviderConfig(name="gem", type="gemini", api_base="http://g.test/", api_key="AIza-secret",
                                         drop_unsupported_params=drop, options={**defaults, **options}))


def call(body, model="gemini-2.5-flash", **kw) -> Call:
    return Call(body=body, model=model, request_id="req-1", created=1, **kw)


def chat(body, model="gemini-2.5-flash", **options):
    request = provider(**options).build_chat(call(body, model))
    return request, orjson.loads(request.body)


def user(text="hi"):
    return {"role": "user", "content": text}


def assistant_calls(*calls):
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": tool_id, "type": "function", "function": {"name": name, "arguments": args}}
        for tool_id, name, args in calls]}


# -- request --------------------------------------------------------------------------------------

def test_url_headers_and_api_version():
    request, _ = chat({"messages": [user()]})
    assert request.url == "http://g.test/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "AIza-secret" and "authorization" not in request.headers
    request = provider(api_version="v1").build_chat(call({"messages": [user()]}, "models/gemini-x", stream=True))
    assert request.url == "http://g.test/v1/models/gemini-x:streamGenerateContent?alt=sse" and request.stream


def test_system_developer_and_role_merging():
    _, body = chat({"messages": [{"role": "system", "content": "A"}, user("1"), user("2"),
                                 {"role": "developer", "content": [{"type": "text", "text": "B"}]},
                                 {"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"},
                                 {"role": "assistant", "content": ""}, user("3")]})
    assert body["systemInstruction"] == {"parts": [{"text": "A"}, {"text": "B"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "1"}, {"text": "2"}]},
                                {"role": "model", "parts": [{"text": "x"}, {"text": "y"}]},
                                {"role": "user", "parts": [{"text": "3"}]}]


def test_images_and_audio():
    _, body = chat({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,AAAA"}},
        {"type": "image_url", "image_url": "https://x.test/a.png"},
        {"type": "input_audio", "input_audio": {"data": "BBBB", "format": "mp3"}}]}]})
    assert body["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/webp", "data": "AAAA"}},
                                            {"fileData": {"fileUri": "https://x.test/a.png", "mimeType": "image/png"}},
                                            {"inlineData": {"mimeType": "audio/mp3", "data": "BBBB"}}]


@pytest.mark.parametrize("part", [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}},
                                  {"type": "video", "video": {}}, {"type": "image_url", "image_url": {}}])
def test_bad_content_parts_are_rejected(part):
    with pytest.raises(InvalidRequest):
        chat({"messages": [{"role": "user", "content": [part]}]})


def test_tool_calls_results_and_signatures_restored():
    first = make_id(call({}), 0, signature=SIG)
    second = make_id(call({}), 1, gemini_id="fc-2")
    _, body = chat({"messages": [
        user("weather?"),
        assistant_calls((first, "get_weather", '{"city":"Paris"}'), (second, "get_time", "")),
        {"role": "tool", "tool_call_id": second, "content": [{"type": "text", "text": "noon"}]},
        {"role": "tool", "tool_call_id": first, "content": '{"temp": 18}'}]})
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
        {"functionCall": {"name": "get_time", "args": {}, "id": "fc-2"}}]
    assert results == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_time", "response": {"result": "noon"}, "id": "fc-2"}},
        {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]}


def test_tool_result_without_matching_call_is_rejected():
    with pytest.raises(InvalidRequest) as caught:
        chat({"messages": [user(), {"role": "tool", "tool_call_id": "call_x", "content": "1"}]})
    assert caught.value.param == "messages[1].tool_call_id"


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]"])
def test_tool_call_arguments_must_be_an_object(arguments):
    with pytest.raises(InvalidRequest):
        chat({"messages": [user(), assistant_calls(("call_1", "f", arguments))]})


def test_altered_tool_call_id_is_rejected():
    with pytest.raises(InvalidRequest, match="altered"):
        chat({"messages": [user(), assistant_calls(("call_1__ts_x!!", "f", "{}"))]})


@pytest.mark.parametrize("signature", [SIG, "not base64 at all", "YQ", None])
@pytest.mark.parametrize("gemini_id", ["abc-1", None])
def test_tool_ids_round_trip(signature, gemini_id):
    tool_id = make_id(call({}), 3, gemini_id, signature)
    assert tool_id.startswith("call_req1_3")
    assert all(c.isalnum() or c in "_-" for c in tool_id)
    ref = parse_id(tool_id)
    assert (ref.gemini_id, ref.signature) == (gemini_id, signature)


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]})])
def test_tool_choice(choice, expected):
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]
    _, body = chat({"messages": [user()], "tools": tools, "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": expected}
    assert body["tools"] == [{"functionDeclarations": [{"name": "f", "description": "d",
                                                        "parametersJsonSchema": {"type": "object"}}]}]


def test_non_function_tools_are_unsupported():
    with pytest.raises(UnsupportedParameter):
        chat({"messages": [user()], "tools": [{"type": "web_search"}]})


def test_generation_config():
    _, body = chat({"messages": [user()], "temperature": 0, "top_p": 0.5, "max_tokens": 9, "stop": "END", "n": 2,
                    "seed": 3, "presence_penalty": 0.1, "frequency_penalty": 0.2,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}})
    assert body["generationConfig"] == {"temperature": 0, "topP": 0.5, "maxOutputTokens": 9, "stopSequences": ["END"],
                                        "candidateCount": 2, "seed": 3, "presencePenalty": 0.1,
                                        "frequencyPenalty": 0.2, "responseMimeType": "application/json",
                                        "responseJsonSchema": {"type": "object"}}
    _, body = chat({"messages": [user()], "max_tokens": 9, "max_completion_tokens": 20,
                    "response_format": {"type": "json_object"}})
    assert body["generationConfig"] == {"maxOutputTokens": 20, "responseMimeType": "application/json"}
    _, body = chat({"messages": [user()], "response_format": {"type": "text"}, "stream_options": {"x": 1}})
    assert "generationConfig" not in body


@pytest.mark.parametrize("model, effort, expected", [
    ("gemini-3-pro-preview", "high", {"thinkingLevel": "high"}), ("models/gemini-3-flash", "none", {"thinkingLevel": "minimal"}),
    ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192}), ("gemini-2.5-pro", "none", {"thinkingBudget": 0})])
def test_reasoning_effort(model, effort, expected):
    _, body = chat({"messages": [user()], "reasoning_effort": effort}, model)
    assert body["generationConfig"]["thinkingConfig"] == expected


@pytest.mark.parametrize("field, value", [("user", "u1"), ("logit_bias", {"1": 2}), ("logprobs", True),
                                          ("parallel_tool_calls", False), ("audio", {"voice": "x"})])
def test_unsupported_params(field, value):
    with pytest.raises(UnsupportedParameter) as caught:
        chat({"messages": [user()], field: value})
    assert caught.value.param == field and "gem" in caught.value.message
    _, body = chat({"messages": [user()], field: value}, drop=True)
    assert body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_harmless_values_of_unsupported_params_pass():
    _, body = chat({"messages": [user()], "logprobs": False, "parallel_tool_calls": True, "store": False})
    assert body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_safety_settings_option():
    settings = [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}]
    _, body = chat({"messages": [user()]}, safety_settings=settings)
    assert body["safetySettings"] == settings


# -- response -------------------------------------------------------------------------------------

def parse(data, body=None, model="gemini-2.5-flash"):
    translated = provider().parse_chat(call(body or {"messages": [user()]}, model),
                                       UpstreamResponse(200, {}, orjson.dumps(data)))
    return orjson.loads(translated.body), translated


def candidate(parts, finish="STOP", **extra):
    return {"content": {"role": "model", "parts": parts}, "finishReason": finish, **extra}


@pytest.mark.parametrize("reason, expected", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("LANGUAGE", "content_filter"), ("IMAGE_SAFETY", "content_filter"), ("OTHER", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "stop"), ("FINISH_REASON_UNSPECIFIED", "stop"), (None, "stop")])
def test_finish_reasons(reason, expected):
    data, _ = parse({"candidates": [candidate([{"text": "x"}], reason)]})
    assert data["choices"][0]["finish_reason"] == expected
    assert FINISH_REASONS.get(reason or "", "stop") == expected


def test_function_calls_win_over_finish_reason_and_carry_signatures():
    data, _ = parse({"candidates": [candidate([
        {"text": "plan", "thought": True}, {"text": "Calling."},
        {"functionCall": {"name": "a", "args": {"x": [1]}}, "thoughtSignature": SIG},
        {"functionCall": {"name": "b"}}])]})
    message = data["choices"][0]["message"]
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] == "Calling."
    assert [c["function"] for c in message["tool_calls"]] == [{"name": "a", "arguments": '{"x":[1]}'},
                                                              {"name": "b", "arguments": "{}"}]
    assert parse_id(message["tool_calls"][0]["id"]).signature == SIG
    assert parse_id(message["tool_calls"][1]["id"]).signature is None


def test_usage_and_model():
    data, translated = parse({"candidates": [candidate([{"text": "x"}])], "modelVersion": "gemini-2.5-flash-002",
                              "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                                                "thoughtsTokenCount": 7, "cachedContentTokenCount": 4,
                                                "toolUsePromptTokenCount": 2, "totalTokenCount": 24}})
    assert data["usage"] == {"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24,
                             "prompt_tokens_details": {"cached_tokens": 4},
                             "completion_tokens_details": {"reasoning_tokens": 7}}
    assert data["model"] == translated.model == "gemini-2.5-flash-002"
    assert data["id"] == "chatcmpl-req1" and data["object"] == "chat.completion"


def test_blocked_prompt_and_empty_answers():
    data, _ = parse({"promptFeedback": {"blockReason": "BLOCKLIST"}})
    assert data["choices"][0]["finish_reason"] == "content_filter"
    assert data["choices"][0]["message"]["content"] is None
    with pytest.raises(UpstreamError):
        parse({"candidates": []})
    with pytest.raises(UpstreamError):
        provider().parse_chat(call({}), UpstreamResponse(200, {}, b"<html>"))


# -- errors ---------------------------------------------------------------------------------------

def gemini_error(code, status, message, reason=None, headers=None, details=None):
    error = {"code": code, "message": message, "status": status, "details": details or []}
    if reason:
        error["details"].append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason})
    return provider().map_error(UpstreamResponse(code, headers or {}, orjson.dumps({"error": error})))


@pytest.mark.parametrize("args, cls, status", [
    ((400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"), InvalidApiKey, 401),
    ((400, "INVALID_ARGUMENT", "API key expired.", "API_KEY_EXPIRED"), InvalidApiKey, 401),
    ((401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), InvalidApiKey, 401),
    ((400, "INVALID_ARGUMENT", "The input token count (2000000) exceeds the maximum number of tokens allowed "
      "(1048576)."), ContextLengthExceeded, 400),
    ((400, "INVALID_ARGUMENT", "Invalid value at 'contents'"), UpstreamClientError, 400),
    ((403, "PERMISSION_DENIED", "denied"), PermissionDenied, 403),
    ((404, "NOT_FOUND", "models/x is not found"), ModelNotFound, 404),
    ((429, "RESOURCE_EXHAUSTED", "quota"), UpstreamRateLimited, 429),
    ((500, "INTERNAL", "oops"), UpstreamError, 502),
    ((503, "UNAVAILABLE", "The model is overloaded."), Overloaded, 503),
    ((504, "DEADLINE_EXCEEDED", "slow"), UpstreamTimeout, 504)])
def test_error_mapping(args, cls, status):
    error = gemini_error(*args)
    assert type(error) is cls and error.status == status
    if cls is ContextLengthExceeded:
        assert error.param == "messages" and error.code == "context_length_exceeded"


def test_rate_limit_keeps_retry_after():
    assert gemini_error(429, "RESOURCE_EXHAUSTED", "quota", headers={"retry-after": "7"}).retry_after == 7
    delay = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}]
    assert gemini_error(429, "RESOURCE_EXHAUSTED", "quota", details=delay).retry_after == 12.5


def test_error_messages_are_scrubbed():
    error = gemini_error(400, "INVALID_ARGUMENT", "bad key AIza-secret given")
    assert "AIza-secret" not in error.message and error.code == "invalid_argument"


# -- stream ---------------------------------------------------------------------------------------

def sse(*events, newline="\r\n"):
    return b"".join(b"data: " + orjson.dumps(e) + (newline * 2).encode() for e in events)


def run(raw, include_usage=True, pieces=None):
    translator = provider().stream_translator(call({"messages": [user()]}, stream=True, include_usage=include_usage))
    frames = [f for piece in (pieces or [raw]) for f in translator.feed(piece)] + translator.finish()
    chunks = [orjson.loads(f.removeprefix(b"data: ")) for f in frames]
    assert all(f.startswith(b"data: ") and f.endswith(b"\n\n") for f in frames)
    return chunks, translator


def test_stream_text_usage_and_finish():
    raw = sse({"candidates": [candidate([{"text": "Hel"}], None)], "modelVersion": "gm-1",
               "usageMetadata": {"promptTokenCount": 3}},
              {"candidates": [candidate([{"text": "lo"}], "MAX_TOKENS")],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 1}})
    chunks, translator = run(raw)
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}, None]
    assert chunks[3]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 3 and chunks[-1]["usage"]["total_tokens"] == 6
    assert {c["model"] for c in chunks} == {"gm-1"} and translator.model == "gm-1"
    assert translator.usage.reasoning_tokens == 1
    chunks, _ = run(raw, include_usage=False)
    assert all("usage" not in c for c in chunks) and len(chunks) == 4


def test_stream_tool_call_deltas():
    raw = sse({"candidates": [candidate([{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": SIG},
                                         {"functionCall": {"name": "g", "args": {}}}], "STOP")]})
    chunks, _ = run(raw, include_usage=False)
    tool_deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert tool_deltas[0]["index"] == 0 and tool_deltas[0]["function"] == {"name": "f", "arguments": ""}
    assert parse_id(tool_deltas[0]["id"]).signature == SIG and tool_deltas[0]["type"] == "function"
    assert tool_deltas[1] == {"index": 0, "function": {"arguments": '{"a":1}'}}
    assert tool_deltas[2]["index"] == 1 and tool_deltas[3] == {"index": 1, "function": {"arguments": "{}"}}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_two_candidates_need_both_finishes():
    first = sse({"candidates": [candidate([{"text": "a"}], None, index=0), candidate([{"text": "b"}], None, index=1)]},
                {"candidates": [candidate([], "STOP", index=0)]})
    with pytest.raises(UpstreamError):
        run(first)
    chunks, _ = run(first + sse({"candidates": [candidate([], "STOP", index=1)]}), include_usage=False)
    assert sorted(c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]) == [0, 1]


@pytest.mark.parametrize("raw", [b"", sse({"candidates": [candidate([{"text": "Hel"}], None)]}),
                                 sse({"candidates": [candidate([{"text": "x"}], "STOP")]})[:-4]])
def test_stream_truncation(raw):
    if raw.endswith(b"}"):  # a final event without its blank line still counts
        chunks, _ = run(raw, include_usage=False)
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        return
    with pytest.raises(UpstreamError, match="finishReason"):
        run(raw)


def test_stream_error_event_after_content():
    raw = sse({"candidates": [candidate([{"text": "Hel"}], None)]},
              {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}})
    translator = provider().stream_translator(call({}, stream=True))
    assert len(translator.feed(raw)) == 2  # the frames before the error are not lost
    with pytest.raises(UpstreamRateLimited):
        translator.finish()
    with pytest.raises(UpstreamRateLimited):
        run(raw, pieces=[raw[:raw.index(b"data: {\"error")], raw[raw.index(b"data: {\"error"):]])


def test_stream_not_json_is_an_upstream_error():
    with pytest.raises(UpstreamError):
        run(b"data: {oops\n\n")


# -- embeddings and models ------------------------------------------------------------------------

def test_embeddings_request_and_base64():
    p = provider(embedding_task_type="SEMANTIC_SIMILARITY")
    c = call({"input": ["ab", "cdefgh"], "dimensions": 2, "encoding_format": "base64"}, "gemini-embedding-001",
             endpoint="embeddings")
    request = p.build_embeddings(c)
    assert request.url == "http://g.test/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert orjson.loads(request.body)["requests"][1] == {
        "model": "models/gemini-embedding-001", "content": {"parts": [{"text": "cdefgh"}]},
        "outputDimensionality": 2, "taskType": "SEMANTIC_SIMILARITY"}
    answer = {"embeddings": [{"values": [0.5, -2.0]}, {"values": [0.25, 1.0]}]}
    translated = p.parse_embeddings(c, UpstreamResponse(200, {}, orjson.dumps(answer)))
    data = orjson.loads(translated.body)
    vectors = [list(array("f", base64.b64decode(item["embedding"]))) for item in data["data"]]
    assert vectors == [[0.5, -2.0], [0.25, 1.0]]
    assert translated.usage.estimated and data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_embeddings_rejections():
    with pytest.raises(UnsupportedParameter):
        provider().build_embeddings(call({"input": "x", "user": "u"}, endpoint="embeddings"))
    for bad in ([], [1, 2], None):
        with pytest.raises(InvalidRequest):
            provider().build_embeddings(call({"input": bad}, endpoint="embeddings"))


def test_list_models():
    p = provider()
    request = p.build_list_models()
    assert request.method == "GET" and request.url == "http://g.test/v1beta/models?pageSize=1000"
    assert request.headers["x-goog-api-key"] == "AIza-secret"
    models = p.parse_list_models(UpstreamResponse(200, {}, orjson.dumps({"models": [
        {"name": "models/gemini-2.5-flash", "displayName": "Flash", "inputTokenLimit": 5}]})))
    assert models == [{"name": "models/gemini-2.5-flash", "displayName": "Flash", "inputTokenLimit": 5,
                       "id": "gemini-2.5-flash", "object": "model", "created": 0, "owned_by": "google"}]
