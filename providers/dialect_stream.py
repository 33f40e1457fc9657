"""The stream translator of the OpenAI-dialect providers: ``OpenAIStreamTranslator`` plus chunk repair,
usage moved to OpenAI's separate last chunk, and an optional end without ``[DONE]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.errors import UpstreamError
from gateway.sse import SSEEvent, encode_data
from providers.base import Call, Usage, usage_chunk
from providers.dialect_repair import drop_null_fingerprint
from providers.openai_compat import OpenAIStreamTranslator

if TYPE_CHECKING:
    from providers.openai_dialect import OpenAIDialect


class DialectStreamTranslator(OpenAIStreamTranslator):
    """``OpenAIStreamTranslator`` for dialects: repairs chunks and normalises where usage travels."""

    __slots__ = ("finished", "usage_sent", "chunk_id", "chunk_created")

    def __init__(self, provider: OpenAIDialect, call: Call) -> None:
        super().__init__(provider, call)
        self.finished = False  # a chunk with a finish_reason was seen
        self.usage_sent = False  # the client got a usage-only chunk
        self.chunk_id: str | None = None
        self.chunk_created: int | None = None

    def _event(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        chunk = self._chunk(data)
        if chunk is None:
            return []
        if self.model is None and chunk.get("model"):
            self.model = chunk["model"]
        changed = self.provider.transform_chunk(self.call, chunk)
        changed |= self._move_usage(chunk)
        if not chunk.get("choices"):
            if not (chunk.get("usage") and self.call.include_usage):
                return []  # nothing an OpenAI client reads (or usage it did not ask for)
            self.usage_sent = True
        elif any(isinstance(c, dict) and c.get("finish_reason") for c in chunk["choices"]):
            self.finished = True
        if self.chunk_id is None:
            self.chunk_id, self.chunk_created = chunk.get("id"), chunk.get("created")
        if changed:
            return [encode_data(chunk)]
        return [f"data: {data}\n\n".encode()]

    def _move_usage(self, chunk: dict[str, Any]) -> bool:
        """Read usage; keep it only on a usage-only chunk (the one OpenAI clients read it from)."""
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
            if chunk.get("choices"):
                if self.call.include_usage:
                    chunk["usage"] = None
                else:
                    del chunk["usage"]
                return True
        return False

    def _end(self) -> list[bytes]:
        if not self.done and not (self.provider.finish_ends_stream and self.finished):
            raise UpstreamError(f"provider '{self.provider.config.name}' ended the stream before it finished")
        if not (self.call.include_usage and self.usage is not None and not self.usage_sent):
            return []
        chunk = usage_chunk(self.call, self.usage, model=self.model)
        chunk["id"] = self.chunk_id or chunk["id"]
        chunk["created"] = self.chunk_created or chunk["created"]
        drop_null_fingerprint(chunk)
        return [encode_data(chunk)]
