"""OpenAI ``/v1/embeddings`` <-> Gemini ``:batchEmbedContents`` (what the official SDK uses too).

``input`` (a string or a list of strings) becomes one request per text; ``dimensions`` ->
``outputDimensionality``; the provider option ``embedding_task_type`` -> ``taskType``. Gemini
returns ``{"embeddings": [{"values": [...]}]}`` and no token counts, so usage is estimated (about
four characters a token, ``Usage.estimated`` set) unless a ``usageMetadata`` is present.
``encoding_format: "base64"`` is honoured (little-endian float32, as OpenAI sends it).
"""

from __future__ import annotations

import base64
from array import array
from typing import Any

import orjson

from gateway.errors import InvalidRequest, UpstreamError
from providers.base import Call, Translated, Usage, answer_json


def texts_of(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("Gemini embeddings take 'input' as a string or a non-empty list of strings "
                             "(token arrays are not supported)", param="input")
    return texts


def build_body(body: dict[str, Any], model_path: str, task_type: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = body["dimensions"]
    if task_type:
        extra["taskType"] = task_type
    return {"requests": [{"model": model_path, "content": {"parts": [{"text": text}]}, **extra}
                         for text in texts_of(body)]}


def parse(call: Call, body: bytes, provider_name: str) -> Translated:
    data = answer_json(body, provider_name)
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(embeddings, list):
        raise UpstreamError(f"provider '{provider_name}' answered without 'embeddings'")
    as_base64 = call.body.get("encoding_format") == "base64"
    items = []
    for i, item in enumerate(embeddings):
        values = item.get("values") or [] if isinstance(item, dict) else []
        vector: Any = base64.b64encode(array("f", values).tobytes()).decode() if as_base64 else values
        items.append({"object": "embedding", "index": i, "embedding": vector})
    usage = _usage(data, texts_of(call.body))
    out = {"object": "list", "data": items, "model": call.model,
           "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}}
    return Translated(body=orjson.dumps(out), usage=usage, model=call.model)


def _usage(data: dict[str, Any], texts: list[str]) -> Usage:
    meta = data.get("usageMetadata")
    if isinstance(meta, dict) and meta.get("promptTokenCount") is not None:
        return Usage(prompt_tokens=int(meta["promptTokenCount"]))
    return Usage(prompt_tokens=sum(max(1, (len(t) + 3) // 4) for t in texts), estimated=True)
