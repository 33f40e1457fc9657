"""The shipped config/gateway.yaml works with no vendor keys, through the mock provider."""

from __future__ import annotations

from pathlib import Path

import openai

from tests.harness import run_gateway
from tests.schemas import validate

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_serves_every_endpoint_without_keys():
    text = (ROOT / "config" / "gateway.yaml").read_text().replace("prices: prices.yaml", f"prices: {ROOT}/config/prices.yaml")
    with run_gateway(text, env={"SWITCHYARD_MASTER_KEY": ""}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ping pong"}])
        validate("CreateChatCompletionResponse", completion.model_dump(exclude_unset=True))
        assert completion.choices[0].message.content == "ping pong"
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a b c"}],
                                                     stream=True, stream_options={"include_usage": True}))
        for chunk in chunks:
            validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        assert chunks[-1].usage.completion_tokens == 3
        embedding = client.embeddings.create(model="text-embedding-3-small", input="hello")
        validate("CreateEmbeddingResponse", embedding.model_dump())
        assert len(embedding.data[0].embedding) == 256
        assert {m.id for m in client.models.list().data} == {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}
        assert "NO MASTER KEY" in gw.logs()
