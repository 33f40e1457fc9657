"""The OpenAI-compatible endpoints: chat completions, embeddings, models.

Each handler reads the request, asks governance to admit it, runs the pipeline and answers; the
app's dispatcher records the exchange once, whatever happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from gateway.auth import Identity
from gateway.errors import ModelNotFound
from gateway.exchange import Exchange
from gateway.http import JSON_HEADERS, encode_headers, parse_json_body, read_body, send_bytes, send_json
from gateway.pipeline import LiveStream, Pipeline, group_for, validate_chat, validate_embeddings
from gateway.relay import relay

if TYPE_CHECKING:
    from gateway.app import Switchyard


async def _admitted_body(gw: Switchyard, receive, headers: dict[str, str], ex: Exchange, identity: Identity,
                         validate) -> tuple[Any, dict[str, Any]]:
    rt = gw.runtime
    body = parse_json_body(await read_body(receive, headers, rt.config.server.max_body_bytes), headers)
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        ex.model = body["model"]
    group = group_for(rt, body if isinstance(body, dict) else {})
    ex.model_known = True
    body = validate(body)
    body = await gw.hooks.admit(rt, identity, ex, group, body)
    return group, body


async def chat_completions(gw: Switchyard, scope, receive, send, ex: Exchange, headers: dict[str, str],
                           identity: Identity) -> None:
    ex.endpoint = "chat.completions"
    rt = gw.runtime
    group, body = await _admitted_body(gw, receive, headers, ex, identity, validate_chat)
    ex.stream = bool(body.get("stream"))
    result = await Pipeline(rt, gw.metrics, ex).chat(group, body)
    if isinstance(result, LiveStream):
        await relay(send, receive, result, ex)
        await gw.hooks.settle(rt, identity, ex)
        return
    ex.usage = result.usage
    ex.status = 200
    await gw.hooks.settle(rt, identity, ex, result.body)
    await send_bytes(send, 200, result.body, JSON_HEADERS + encode_headers(ex.headers()))


async def embeddings(gw: Switchyard, scope, receive, send, ex: Exchange, headers: dict[str, str],
                     identity: Identity) -> None:
    ex.endpoint = "embeddings"
    rt = gw.runtime
    group, body = await _admitted_body(gw, receive, headers, ex, identity, validate_embeddings)
    result = await Pipeline(rt, gw.metrics, ex).embeddings(group, body)
    ex.usage = result.usage
    ex.status = 200
    await gw.hooks.settle(rt, identity, ex, result.body)
    await send_bytes(send, 200, result.body, JSON_HEADERS + encode_headers(ex.headers()))


def model_object(gw: Switchyard, name: str) -> dict[str, Any]:
    group = gw.runtime.config.models[name]
    return {"id": name, "object": "model", "created": gw.loaded_at, "owned_by": group.owned_by}


async def list_models(gw: Switchyard, scope, receive, send, ex: Exchange, headers: dict[str, str],
                      identity: Identity) -> None:
    ex.endpoint = "models"
    names = [n for n in gw.runtime.config.models if gw.hooks.may_use(identity, n)]
    await gw.hooks.limit_headers(gw.runtime, identity, ex)
    ex.status = 200
    await send_json(send, 200, {"object": "list", "data": [model_object(gw, n) for n in names]}, ex.headers())


async def get_model(gw: Switchyard, scope, receive, send, ex: Exchange, headers: dict[str, str],
                    identity: Identity, model_id: str) -> None:
    ex.endpoint = "models"
    ex.model = model_id
    if model_id not in gw.runtime.config.models or not gw.hooks.may_use(identity, model_id):
        raise ModelNotFound(f"The model '{model_id}' does not exist or you do not have access to it.", param="model")
    ex.model_known = True
    await gw.hooks.limit_headers(gw.runtime, identity, ex)
    ex.status = 200
    await send_bytes(send, 200, orjson.dumps(model_object(gw, model_id)), JSON_HEADERS + encode_headers(ex.headers()))
