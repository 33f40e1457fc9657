"""The provider interface: what every vendor plugin implements, the same way.

A provider *translates*; it does no I/O. The gateway's pipeline asks it for an ``UpstreamRequest``,
sends it through the one upstream HTTP module, and hands the answer back for translation:

    build_chat(call)            -> UpstreamRequest      OpenAI chat request  -> vendor request
    parse_chat(call, response)  -> Translated           vendor response      -> chat.completion
    stream_translator(call)     -> StreamTranslator     vendor stream bytes  -> chat.completion.chunk frames
    build_embeddings / parse_embeddings                  same, for /v1/embeddings
    build_list_models / parse_list_models                the vendor's model list -> OpenAI model objects
    map_error(response)         -> GatewayError         vendor error body    -> the gateway's taxonomy
    follow_up(call, response)   -> UpstreamRequest|None a second call the vendor needs (Replicate)

Request bodies stay raw dicts (``Call.body``) so fields nobody here knows pass through untouched.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from gateway.errors import (GatewayError, UnsupportedParameter, UpstreamError, from_upstream_status,
                            parse_retry_after, scrub)
from gateway.sse import SSEDecoder, SSEEvent


@dataclass(frozen=True, slots=True)
class Timeout:
    connect: float = 5.0
    read: float = 600.0  # the longest silence allowed between two reads
    total: float = 900.0


@dataclass(frozen=True, slots=True)
class Capabilities:
    chat: bool = True
    embeddings: bool = False
    tools: bool = True
    vision: bool = True
    json_mode: bool = True
    streaming_usage: bool = True
    list_models: bool = True

    def as_dict(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """A plugin-specific YAML key under ``providers.<name>``."""

    type: type | tuple[type, ...]
    default: Any = None
    help: str = ""
    # for dict/list options: the type of the values/items (checked by the config validator)
    item_type: type | tuple[type, ...] | None = None
    # the allowed values, when the option is an enumeration (checked by the config validator)
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str  # the YAML provider name, e.g. "openai-main"
    type: str  # the plugin name, e.g. "openai"
    api_base: str
    api_key: str | None = None
    timeout: Timeout = Timeout()
    headers: Mapping[str, str] = field(default_factory=dict)
    drop_unsupported_params: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)  # the plugin's own keys (OptionSpec)
    max_connections: int = 1000
    # egress proxy URL (http://[user:pass@]host:port); None: from HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "": never
    proxy: str | None = field(default=None, repr=False)

    def option(self, name: str) -> Any:
        return self.options.get(name)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    stream: bool = False  # read the answer as a stream (StreamTranslator) instead of a whole body
    delay: float = 0.0  # seconds to wait before sending (polling follow-ups)


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # counted by the gateway, not reported by the vendor

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def openai(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }
        return usage

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage | None:
        if not usage:
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )


@dataclass(slots=True)
class Call:
    """One client request as a provider sees it (created per attempt)."""

    body: dict[str, Any]  # the client's JSON body (OpenAI shape); do not mutate, copy what you change
    model: str  # the upstream model id (the deployment's ``model``)
    endpoint: str = "chat"  # "chat" | "embeddings"
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk (stream_options.include_usage)
    request_id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    scratch: dict[str, Any] = field(default_factory=dict)  # per-call state a provider may keep

    @property
    def completion_id(self) -> str:
        return "chatcmpl-" + (self.request_id.replace("-", "") or "switchyard")


@dataclass(slots=True)
class Translated:
    body: bytes  # the OpenAI-shaped JSON the client receives
    usage: Usage | None = None
    model: str | None = None  # the model the upstream reported


def answer_json(body: bytes, provider_name: str) -> Any:
    """An upstream answer's JSON; ``UpstreamError`` when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"provider '{provider_name}' answered with a body that is not JSON") from None


def event_json(data: str, provider_name: str) -> Any:
    """A stream event's JSON; ``UpstreamError`` when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"provider '{provider_name}' sent a stream event that is not JSON") from None


class StreamTranslator:
    """Per-stream state: fed upstream bytes as they arrive, gives back client SSE frames.

    ``feed`` returns zero or more frames, each ``b"data: {...}\\n\\n"`` (see ``gateway.sse``). It raises
    a ``GatewayError`` when the upstream reports an error inside the stream (a translator may return
    the frames that came before the error first and raise at the next ``feed`` or ``finish``).
    ``finish`` is called at the upstream's end of stream: it returns the last frames (the usage chunk
    when ``call.include_usage``) or raises when the stream ended before the vendor's terminator (the
    client then gets an error event, never a truncated stream that looks complete). The pipeline
    writes ``data: [DONE]`` itself after a successful ``finish``. ``usage`` holds the usage once known.
    Vendors that stream server-sent events subclass ``SSEStreamTranslator``.
    """

    usage: Usage | None = None
    model: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        raise NotImplementedError


class SSEStreamTranslator(StreamTranslator):
    """A ``StreamTranslator`` for a vendor that streams server-sent events: it owns the loop.

    Subclasses call ``super().__init__()`` and implement two methods:

        _event(event)  one decoded ``SSEEvent`` -> the client frames it makes (often none); raises
                       the mapped ``GatewayError`` for a vendor error event
        _end()         called by ``finish`` after the last event: the final frames (e.g. the usage
                       chunk), or raises ``UpstreamError`` when the vendor's terminator never came

    An error raised by ``_event`` after other events of the same ``feed`` made frames is held back:
    those frames are returned, and the error is raised by the next ``feed`` or ``finish`` (and by
    every call after it). So the client gets the frames that preceded an error however the upstream
    bytes were split. An error before any frame of the call, or during ``finish``, is raised at once.
    """

    __slots__ = ("decoder", "held_error")

    def __init__(self) -> None:
        self.decoder = SSEDecoder()
        self.held_error: GatewayError | None = None  # met after frames of the same call; raised next

    def feed(self, data: bytes) -> list[bytes]:
        if self.held_error is not None:
            raise self.held_error
        frames: list[bytes] = []
        try:
            for event in self.decoder.feed(data):
                frames += self._event(event)
        except GatewayError as error:
            if not frames:
                raise
            self.held_error = error
        return frames

    def finish(self) -> list[bytes]:
        if self.held_error is not None:
            raise self.held_error
        frames: list[bytes] = []
        for event in self.decoder.flush():
            frames += self._event(event)  # an error here is raised by finish itself: no call follows
        frames += self._end()
        return frames

    def _event(self, event: SSEEvent) -> list[bytes]:
        raise NotImplementedError

    def _end(self) -> list[bytes]:
        raise NotImplementedError


class Provider:
    """Base class of every vendor plugin. Subclasses set the class attributes and override methods."""

    type_name: ClassVar[str] = ""
    default_api_base: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    # plugin-specific YAML keys, validated by the config loader (unknown keys are rejected)
    options: ClassVar[Mapping[str, OptionSpec]] = {}
    # request fields (top-level keys of the OpenAI body) this vendor cannot honour
    unsupported_params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.api_base = config.api_base.rstrip("/")

    # -- chat -----------------------------------------------------------------------------------

    def build_chat(self, call: Call) -> UpstreamRequest:
        raise NotImplementedError

    def parse_chat(self, call: Call, response: UpstreamResponse) -> Translated:
        raise NotImplementedError

    def stream_translator(self, call: Call) -> StreamTranslator:
        raise NotImplementedError

    # -- embeddings -----------------------------------------------------------------------------

    def build_embeddings(self, call: Call) -> UpstreamRequest:
        raise UnsupportedParameter(f"provider '{self.config.name}' ({self.type_name}) does not serve embeddings",
                                   param="model", code="unsupported_endpoint")

    def parse_embeddings(self, call: Call, response: UpstreamResponse) -> Translated:
        raise NotImplementedError

    # -- follow-ups (a vendor that needs a second call, e.g. Replicate's stream URL) -------------

    def follow_up(self, call: Call, response: UpstreamResponse) -> UpstreamRequest | None:
        return None

    # -- model discovery ------------------------------------------------------------------------

    def build_list_models(self) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{self.api_base}/models", self.auth_headers())

    def parse_list_models(self, response: UpstreamResponse) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- errors ---------------------------------------------------------------------------------

    def map_error(self, response: UpstreamResponse) -> GatewayError:
        """Default mapping: the status decides the class, the body's message is kept (scrubbed)."""
        message, code, param = _default_error_fields(response)
        return from_upstream_status(response.status, self.scrub(message), code=code, param=param,
                                    retry_after=parse_retry_after(dict(response.headers)))

    # -- helpers for subclasses -----------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """Headers for every upstream request: extra config headers plus the vendor's auth."""
        headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def scrub(self, message: str) -> str:
        return scrub(message, (self.config.api_key or "",))

    def check_params(self, call: Call, unsupported: frozenset[str] | None = None) -> dict[str, Any]:
        """Apply ``drop_unsupported_params``: a copy of the body without fields the vendor cannot honour,
        or ``UnsupportedParameter`` naming the first such field and this provider."""
        unsupported = self.unsupported_params if unsupported is None else unsupported
        present = [name for name in call.body if name in unsupported and call.body[name] is not None]
        if not present:
            return call.body
        if not self.config.drop_unsupported_params:
            raise UnsupportedParameter(
                f"'{present[0]}' is not supported by provider '{self.config.name}' ({self.type_name}); "
                "set drop_unsupported_params: true on the provider to drop it",
                param=present[0],
            )
        import logging

        logging.getLogger("switchyard.providers").info(
            "dropped unsupported params", extra={"provider": self.config.name, "params": present})
        return {k: v for k, v in call.body.items() if k not in unsupported}


def _default_error_fields(response: UpstreamResponse) -> tuple[str, str | None, str | None]:
    try:
        body = orjson.loads(response.body) if response.body else None
    except orjson.JSONDecodeError:
        body = None
    message = ""
    code = param = None
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("detail") or "")
            code = error.get("code") if isinstance(error.get("code"), str) else None
            param = error.get("param") if isinstance(error.get("param"), str) else None
        elif isinstance(error, str):
            message = error
    if not message:
        text = response.body[:500].decode("utf-8", "replace").strip()
        message = text or f"upstream answered HTTP {response.status}"
    return message, code, param


def openai_chunk(call: Call, delta: dict[str, Any] | None = None, finish_reason: str | None = None,
                 *, index: int = 0, model: str | None = None, usage: Usage | None = None,
                 choices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk`` for translators that build OpenAI chunks from another format."""
    if choices is None:
        choices = [{"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}]
    chunk: dict[str, Any] = {
        "id": call.completion_id,
        "object": "chat.completion.chunk",
        "created": call.created,
        "model": model or call.model,
        "choices": choices,
    }
    if call.include_usage:
        chunk["usage"] = usage.openai() if usage is not None else None
    return chunk


def usage_chunk(call: Call, usage: Usage, model: str | None = None) -> dict[str, Any]:
    """The final chunk sent when the client asked for ``stream_options.include_usage``."""
    return openai_chunk(call, choices=[], model=model, usage=usage)
