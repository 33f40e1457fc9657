"""The bytes every benchmark target sees: one request body, one fixed answer, one SSE stream."""

from __future__ import annotations

import orjson

MODEL = "bench-model"  # the gateway's and LiteLLM's model name for the fixed answer
STREAM_MODEL = "bench-stream"  # ... and for the streaming upstream
UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
MASTER_KEY = "sk-bench-master-0123456789"
UPSTREAM_KEY = "sk-bench-upstream-0123456789"

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write one short sentence about railway switchyards."},
]


def request_body(model: str, stream: bool = False) -> bytes:
    body: dict = {"model": model, "messages": MESSAGES, "max_tokens": 64, "temperature": 0.2}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


RESPONSE_BODY = orjson.dumps({
    "id": "chatcmpl-bench0000000000000000000000",
    "object": "chat.completion",
    "created": 1700000000,
    "model": UPSTREAM_MODEL,
    "system_fingerprint": "fp_bench",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "A switchyard sorts railway cars onto the right tracks, "
                                                    "one switch at a time.", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 28, "completion_tokens": 17, "total_tokens": 45,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
})


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-bench0000000000000000000000", "object": "chat.completion.chunk", "created": 1700000000,
            "model": UPSTREAM_MODEL, "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def stream_frames(chunks: int = 20, usage: bool = False) -> list[bytes]:
    """``chunks`` SSE chunks (role first, finish_reason last), the usage chunk if asked, then [DONE]."""
    chunks = max(chunks, 2)
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": f"tok{i} "}) for i in range(chunks - 2)]
    events.append(_chunk({}, "stop"))
    if usage:
        last = _chunk({})
        last["choices"] = []
        last["usage"] = {"prompt_tokens": 28, "completion_tokens": chunks - 2, "total_tokens": 26 + chunks}
        events.append(last)
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
