"""The official ``google-genai`` SDK parses the Gemini fake's answers: if it cannot, the fake is wrong."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini import GeminiFake, Reply, error_body
from tests.fakes.server import fresh_fixture, served_fixture

pytestmark = pytest.mark.timeout(30)
KEY = "test-gemini-key"
MODEL = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Weather in a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


served = served_fixture(lambda: GeminiFake(KEY))
fake = fresh_fixture()


def make_client(url: str, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url, api_version="v1beta",
                                                                    timeout=10_000))


@pytest.fixture
def client(served):
    with make_client(served.url) as client:
        yield client


def test_generate_content(fake, client):
    fake.replies.append(Reply(text="Hello there, friend", thoughts="thinking about it"))
    response = client.models.generate_content(
        model=MODEL, contents="hi there",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2, max_output_tokens=50,
                                           stop_sequences=["END"], seed=7))
    assert response.text == "Hello there, friend"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count == 2
    assert response.usage_metadata.thoughts_token_count == 3
    sent = fake.received[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert sent.json["generationConfig"]["maxOutputTokens"] == 50


def test_stream(fake, client):
    fake.replies.append(Reply(text="one two three four five"))
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="count"))
    assert "".join(c.text or "" for c in chunks) == "one two three four five"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 5
    assert fake.received[-1].query == {"alt": "sse"}


def test_tools_round_trip_with_thought_signature(fake, client):
    fake.replies.append(Reply(calls=[{"name": "get_weather", "args": {"city": "Paris"}},
                                     {"name": "get_weather", "args": {"city": "Rome"}}]))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode="ANY", allowed_function_names=["get_weather"])),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome?")])
    first = client.models.generate_content(model=MODEL, contents=[question], config=config)
    calls = first.function_calls
    assert [c.args for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    model_turn = first.candidates[0].content
    assert model_turn.parts[0].thought_signature  # bytes, decoded by the SDK
    answers = types.Content(role="user", parts=[
        types.Part(function_response=types.FunctionResponse(name="get_weather", response={"result": "18C"})),
        types.Part(function_response=types.FunctionResponse(name="get_weather", response={"result": "21C"}))])
    fake.replies.append(Reply(text="Paris 18C, Rome 21C."))
    second = client.models.generate_content(model=MODEL, contents=[question, model_turn, answers], config=config)
    assert second.text == "Paris 18C, Rome 21C."
    # without the signature the fake answers like Gemini 3 does
    model_turn.parts[0].thought_signature = None
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=[question, model_turn, answers], config=config)
    assert caught.value.code == 400 and "thought_signature" in caught.value.message


def test_embeddings(fake, client):
    response = client.models.embed_content(model="gemini-embedding-001", contents=["a", "b c"],
                                           config=types.EmbedContentConfig(output_dimensionality=16))
    assert [len(e.values) for e in response.embeddings] == [16, 16]
    sent = fake.received[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.json["requests"][0]["model"] == "models/gemini-embedding-001"


def test_models(fake, client):
    names = [m.name for m in client.models.list(config={"page_size": 2})]
    assert names == ["models/gemini-2.5-flash", "models/gemini-3-pro-preview", "models/gemini-embedding-001"]
    assert fake.received[-1].query.get("pageToken") == "2"


def test_errors(fake, client):
    fake.replies.append(Reply(status=429, body=error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
                              headers={"retry-after": "7"}))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    with make_client(fake.url, "wrong-key") as bad, pytest.raises(errors.ClientError) as caught:
        bad.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 400 and "API key not valid" in caught.value.message
    fake.replies.append(Reply(status=503, body=error_body(503, "UNAVAILABLE", "The model is overloaded.")))
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=MODEL, contents="hi")


def test_stream_error_event(fake, client):
    fake.replies.append(Reply(text="one two three", stream_error={"code": 500, "message": "boom",
                                                                   "status": "INTERNAL"}))
    with pytest.raises(errors.ServerError):
        list(client.models.generate_content_stream(model=MODEL, contents="hi"))


def test_rejects_what_gemini_rejects(fake, client):
    bad_order = [types.Content(role="model", parts=[types.Part(text="a")]),
                 types.Content(role="model", parts=[types.Part(text="b")])]
    with pytest.raises(errors.ClientError, match="alternate"):
        client.models.generate_content(model=MODEL, contents=bad_order)
    with pytest.raises(errors.ClientError, match="not found"):
        client.models.generate_content(model="no-such-model", contents="hi")
