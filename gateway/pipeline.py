"""One request's life, top to bottom: validate -> route -> attempt -> translate.

The endpoints call ``chat`` or ``embeddings`` with the parsed body; the answer is a ``Translated``
(a whole JSON body) or, for streams, a primed ``LiveStream`` whose first frames are already
translated, so a stream that fails before its first byte can still be retried or fall back.
Authentication, governance and recording happen around this in ``gateway.endpoints``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.attempts import AttemptRunner
from gateway.config import Deployment, ModelGroup
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, UpstreamError
from gateway.exchange import Exchange
from gateway.metrics import Metrics
from gateway.runtime import Runtime
from gateway.upstream import UpstreamClient, UpstreamStream
from providers.base import Call, Provider, StreamTranslator, Translated, UpstreamRequest, UpstreamResponse

MAX_FOLLOW_UPS = 600  # a polling vendor (Replicate) gets at most this many follow-up calls


@dataclass(slots=True)
class LiveStream:
    """An upstream stream whose first client frames are ready; the relay sends the rest."""

    upstream: UpstreamStream
    chunks: Any  # the upstream's async iterator, already advanced past the first frames
    translator: StreamTranslator
    first_frames: list[bytes]
    ended: bool  # the upstream already ended while priming (finish() has been called)
    deployment: Deployment


def group_for(runtime: Runtime, body: dict[str, Any]) -> ModelGroup:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    group = runtime.config.models.get(model)
    if group is None:
        raise ModelNotFound(f"The model '{model}' does not exist or you do not have access to it.", param="model")
    return group


async def send(client: UpstreamClient, provider: Provider, call: Call, request: UpstreamRequest) -> UpstreamResponse:
    """Send a request and every follow-up the provider asks for; raise the mapped error on a failure."""
    return await _follow_ups(client, provider, call, request, until_stream=False)  # type: ignore[return-value]


async def stream_request(client: UpstreamClient, provider: Provider, call: Call,
                         request: UpstreamRequest) -> UpstreamRequest:
    """For vendors whose stream is a later call (Replicate): make the calls before it whole and return
    the stream request, unsent."""
    return await _follow_ups(client, provider, call, request, until_stream=True)  # type: ignore[return-value]


async def _follow_ups(client: UpstreamClient, provider: Provider, call: Call, request: UpstreamRequest,
                      until_stream: bool) -> UpstreamResponse | UpstreamRequest:
    for _ in range(MAX_FOLLOW_UPS):
        response = await client.send(request)
        if response.status >= 400:
            raise provider.map_error(response)
        follow_up = provider.follow_up(call, response)
        if follow_up is None:
            if until_stream:
                raise UpstreamError(f"provider '{provider.config.name}' gave no stream to read")
            return response
        if until_stream and follow_up.stream:
            return follow_up
        request = follow_up
    raise UpstreamError(f"provider '{provider.config.name}' did not finish after {MAX_FOLLOW_UPS} follow-up calls")


class Pipeline:
    def __init__(self, runtime: Runtime, metrics: Metrics, exchange: Exchange) -> None:
        self.rt = runtime
        self.metrics = metrics
        self.ex = exchange

    def _call(self, body: dict[str, Any], deployment: Deployment, endpoint: str) -> Call:
        stream = self.ex.stream
        include_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
        return Call(body=body, model=deployment.model, endpoint=endpoint, stream=stream, include_usage=include_usage,
                    request_id=self.ex.request_id, created=self.ex.created)

    async def chat(self, group: ModelGroup, body: dict[str, Any]) -> Translated | LiveStream:
        async def attempt(deployment: Deployment) -> Translated | LiveStream:
            provider = self.rt.provider_for(deployment)
            client = self.rt.pool.get(deployment.provider)
            call = self._call(body, deployment, "chat")
            request = provider.build_chat(call)
            if self.ex.stream:
                return await self._open_stream(client, provider, call, request, deployment)
            return provider.parse_chat(call, await send(client, provider, call, request))

        return await AttemptRunner(self.rt, self.metrics, self.ex).run(group, attempt)

    async def embeddings(self, group: ModelGroup, body: dict[str, Any]) -> Translated:
        async def attempt(deployment: Deployment) -> Translated:
            provider = self.rt.provider_for(deployment)
            client = self.rt.pool.get(deployment.provider)
            call = self._call(body, deployment, "embeddings")
            request = provider.build_embeddings(call)
            return provider.parse_embeddings(call, await send(client, provider, call, request))

        return await AttemptRunner(self.rt, self.metrics, self.ex).run(group, attempt)

    async def _open_stream(self, client: UpstreamClient, provider: Provider, call: Call, request: UpstreamRequest,
                           deployment: Deployment) -> LiveStream:
        if not request.stream:  # the stream is a later call (Replicate)
            request = await stream_request(client, provider, call, request)
        upstream = await client.open(request)
        try:
            if upstream.status >= 400:
                body = await upstream.read()
                raise provider.map_error(UpstreamResponse(upstream.status, upstream.headers, body))
            translator = provider.stream_translator(call)
            chunks = upstream.chunks().__aiter__()
            frames: list[bytes] = []
            ended = False
            while not frames:
                try:
                    data = await chunks.__anext__()
                except StopAsyncIteration:
                    frames = translator.finish()
                    ended = True
                    break
                frames = translator.feed(data)
            return LiveStream(upstream, chunks, translator, frames, ended, deployment)
        except BaseException:
            upstream.close()
            raise


def validate_chat(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' is required and must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{index}] must be an object with a 'role'", param=f"messages[{index}]")
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
    return body


def validate_embeddings(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    value = body.get("input")
    if not _valid_embedding_input(value):
        raise InvalidRequest("'input' must be a string, an array of strings, or an array of token arrays",
                             param="input")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise InvalidRequest("'dimensions' must be a positive integer", param="dimensions")
    return body


def _valid_embedding_input(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(v, str) for v in value):
        return True
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return True
    return all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value)


__all__ = ["GatewayError", "LiveStream", "Pipeline", "group_for", "send", "validate_chat", "validate_embeddings"]
