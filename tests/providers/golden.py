"""Golden files: one recorded case per file, client request -> upstream request -> upstream response
-> client response. ``tests/providers/test_golden.py`` runs every file under ``tests/golden/``;
``SWITCHYARD_UPDATE_GOLDEN=1 pytest tests/providers/test_golden.py`` rewrites the generated halves
(``upstream_request`` and ``client_response``) so a translation change shows up as a diff.

File layout (JSON)::

    {"provider": {"type": "anthropic", "api_base": "http://upstream.test", "api_key": "test-key",
                  "options": {...}},
     "call": {"model": "claude-x", "endpoint": "chat", "stream": false, "include_usage": false},
     "client_request": {... OpenAI body ...},
     "upstream_request": {"method", "url", "headers", "body"},          # generated
     "upstream_response": {"status": 200, "headers": {}, "body": {...}}  # or "stream": "<raw SSE text>"
     "client_response": {...}  |  {"frames": [...], "error": null}     # generated
    }
For a stream the runner also feeds the recorded bytes split at every byte boundary and checks that
the output does not change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import GatewayError
from providers.base import Call, Provider, ProviderConfig, StreamTranslator, UpstreamResponse
from providers.registry import Registry

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
FIXED_CREATED = 1700000000
FIXED_REQUEST_ID = "golden-request"


def make_provider(spec: dict[str, Any]) -> Provider:
    cls = Registry().get(spec["type"])
    options = {name: opt.default for name, opt in cls.options.items()}
    options.update(spec.get("options") or {})
    config = ProviderConfig(
        name=spec.get("name", "golden"), type=spec["type"],
        api_base=spec.get("api_base") or cls.default_api_base, api_key=spec.get("api_key", "test-key"),
        headers=spec.get("headers") or {}, drop_unsupported_params=bool(spec.get("drop_unsupported_params")),
        options=options,
    )
    return cls(config)


def make_call(case: dict[str, Any]) -> Call:
    call = case.get("call") or {}
    body = case["client_request"]
    return Call(body=body, model=call.get("model") or body.get("model", ""), endpoint=call.get("endpoint", "chat"),
                stream=bool(call.get("stream", body.get("stream", False))),
                include_usage=bool(call.get("include_usage",
                                            (body.get("stream_options") or {}).get("include_usage", False))),
                request_id=FIXED_REQUEST_ID, created=FIXED_CREATED)


def _decode_body(body: bytes | None) -> Any:
    if body is None:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def run_stream(translator: StreamTranslator, pieces: list[bytes]) -> dict[str, Any]:
    frames: list[str] = []
    error = None
    try:
        for piece in pieces:
            frames.extend(f.decode() for f in translator.feed(piece))
        frames.extend(f.decode() for f in translator.finish())
    except GatewayError as exc:
        error = {"status": exc.status, **exc.envelope()["error"]}
    return {"frames": frames, "error": error}


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Produce the generated halves of a case: upstream_request and client_response."""
    provider = make_provider(case["provider"])
    call = make_call(case)
    out: dict[str, Any] = {}
    try:
        request = provider.build_embeddings(call) if call.endpoint == "embeddings" else provider.build_chat(call)
    except GatewayError as exc:
        out["upstream_request"] = None
        out["client_response"] = {"status": exc.status, **exc.envelope()}
        return out
    out["upstream_request"] = {"method": request.method, "url": request.url,
                               "headers": dict(sorted(request.headers.items())), "body": _decode_body(request.body)}
    recorded = case.get("upstream_response")
    if recorded is None:
        return out
    status = recorded.get("status", 200)
    headers = {k.lower(): v for k, v in (recorded.get("headers") or {}).items()}
    if "stream" in recorded and status < 400:
        raw = recorded["stream"].encode()
        translator = provider.stream_translator(call)
        result = run_stream(translator, [raw])
        result["usage"] = _usage(translator.usage)
        out["client_response"] = result
        out["_stream_raw"] = raw
        return out
    body = recorded.get("body")
    raw_body = body.encode() if isinstance(body, str) else orjson.dumps(body)
    response = UpstreamResponse(status=status, headers=headers, body=raw_body)
    try:
        if status >= 400:
            raise provider.map_error(response)
        if call.endpoint == "embeddings":
            translated = provider.parse_embeddings(call, response)
        else:
            translated = provider.parse_chat(call, response)
        out["client_response"] = {"body": orjson.loads(translated.body), "usage": _usage(translated.usage)}
    except GatewayError as exc:
        out["client_response"] = {"status": exc.status, **exc.envelope(), "retry_after": exc.retry_after}
    return out


def _usage(usage) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens, "reasoning_tokens": usage.reasoning_tokens,
            "estimated": usage.estimated}


def golden_files() -> list[Path]:
    return sorted(GOLDEN_DIR.glob("*/*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def save(path: Path, case: dict[str, Any]) -> None:
    path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
