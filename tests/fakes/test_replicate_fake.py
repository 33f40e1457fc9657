"""The official ``replicate`` SDK parses the fake's answers: if it cannot, the fake is wrong."""

from __future__ import annotations

import httpx
import pytest
import replicate
from replicate.exceptions import ModelError, ReplicateError

from tests.fakes.replicate import MODELS, ReplicateFake
from tests.fakes.server import fresh_fixture, served_fixture

pytestmark = pytest.mark.timeout(30)

LLAMA = "meta/meta-llama-3-8b-instruct"


served = served_fixture(lambda: ReplicateFake(valid_keys={"r8_testkey"}))
fake = fresh_fixture()


@pytest.fixture
def client(served, monkeypatch):
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
    client = replicate.Client(api_token="r8_testkey", base_url=served.url)
    yield client
    client._client.close()  # the SDK never closes its httpx client itself


def test_run_with_prefer_wait(fake, client):
    fake.reply("Hello there friend")
    output = client.run(LLAMA, input={"prompt": "hi", "max_tokens": 5})
    assert "".join(output) == "Hello there friend"
    create = fake.last("/v1/models/")
    assert create.headers["prefer"].startswith("wait")
    assert create.headers["authorization"] == "Bearer r8_testkey"


def test_create_and_poll(fake, client):
    fake.reply("polled answer", polls=2)
    prediction = client.models.predictions.create(model=LLAMA, input={"prompt": "hi"})
    assert prediction.status == "starting"
    assert prediction.urls["get"].startswith(client._base_url)
    prediction.wait()
    assert prediction.status == "succeeded" and "".join(prediction.output) == "polled answer"
    assert prediction.metrics["output_token_count"] == 2
    assert sum(1 for r in fake.received if r.path == f"/v1/predictions/{prediction.id}") == 3


def test_version_prediction(fake, client):
    version = MODELS[LLAMA]["version"]
    prediction = client.predictions.create(version=version, input={"prompt": "v"}, wait=True)
    assert prediction.status == "succeeded" and fake.last("/v1/predictions").json["version"] == version


def test_stream(fake, client):
    fake.reply("streamed tokens\nwith a newline")
    events = list(client.stream(LLAMA, input={"prompt": "go"}))
    text = "".join(str(e) for e in events)
    assert text == "streamed tokens\nwith a newline"
    assert events[-1].event.value == "done"
    assert fake.last("/v1/stream").headers["accept"] == "text/event-stream"


def test_stream_error_event(fake, client):
    fake.reply("partial output", stream_error="CUDA out of memory")
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        list(client.stream(LLAMA, input={"prompt": "go"}))


def test_failed_prediction(fake, client):
    fake.reply(status="failed", error="model crashed")
    with pytest.raises(ModelError, match="model crashed"):
        client.run(LLAMA, input={"prompt": "hi"})


def test_models(fake, client):
    page = client.models.list()
    names = [f"{m.owner}/{m.name}" for m in page.results]
    assert LLAMA in names
    model = client.models.get(LLAMA)
    assert model.latest_version.id == MODELS[LLAMA]["version"]


def test_errors(fake, client):
    with httpx.Client() as http:
        # the fake accepts the legacy "Token" scheme too, and rejects a wrong key
        assert http.get(f"{fake.url}/v1/models", headers={"authorization": "Token r8_testkey"}).status_code == 200
    bad = replicate.Client(api_token="r8_wrong", base_url=fake.url)
    try:
        with pytest.raises(ReplicateError) as info:
            bad.models.predictions.create(model=LLAMA, input={"prompt": "hi"})
        assert info.value.status == 401 and info.value.title == "Invalid token"
    finally:
        bad._client.close()
    with pytest.raises(ReplicateError) as info:
        client.models.predictions.create(model=LLAMA, input={"prompt": "hi", "bogus": 1})
    assert info.value.status == 422 and "bogus" in info.value.detail
    with pytest.raises(ReplicateError) as info:
        client.models.predictions.create(model="nobody/nothing", input={"prompt": "hi"})
    assert info.value.status == 404
    fake.error(429, "Request was throttled.", {"retry-after": "3"})
    with pytest.raises(ReplicateError) as info:
        client.models.predictions.create(model=LLAMA, input={"prompt": "hi"})  # POST: the SDK does not retry
    assert info.value.status == 429
