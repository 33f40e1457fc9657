"""Perplexity Agent API stream -> OpenAI ``chat.completion.chunk`` frames.

The Agent API streams ``data:`` events typed by their ``type`` field and ends with exactly one terminal
event, never ``[DONE]``:

    response.created / response.in_progress   -> the role chunk (once)
    response.output_text.delta                -> a content delta
    response.output_item.added (function_call)-> the tool call's first delta (index, id, type, name)
    response.function_call_arguments.delta    -> an arguments fragment for that call
    response.output_item.done (function_call) -> the arguments, when no fragment was streamed
    response.completed / response.incomplete  -> text/tool calls never streamed (read from the final
                                                 response), the finish chunk carrying ``citations`` and
                                                 ``search_results``, then the usage chunk when asked
    response.failed / response.cancelled / error -> a GatewayError
    anything else (response.reasoning.*, ...)  -> ignored
"""

from __future__ import annotations

from typing import Any

from gateway.errors import UpstreamError
from gateway.sse import SSEEvent, encode_data
from providers.base import Call, Provider, SSEStreamTranslator, Usage, event_json, openai_chunk, usage_chunk
from providers.dialect_repair import drop_null_fingerprint
from providers.perplexity import agent_response

TERMINAL_OK = ("response.completed", "response.incomplete")
TERMINAL_FAILED = ("response.failed", "response.cancelled", "error")


class AgentStreamTranslator(SSEStreamTranslator):
    __slots__ = ("provider", "call", "done", "usage", "model", "started", "text_sent", "calls", "args_sent")

    def __init__(self, provider: Provider, call: Call) -> None:
        super().__init__()
        self.provider = provider
        self.call = call
        self.done = False
        self.usage: Usage | None = None
        self.model: str | None = None
        self.started = False
        self.text_sent = False
        self.calls: dict[str, int] = {}  # item id / call id / output index -> tool-call index
        self.args_sent: set[int] = set()

    def _end(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(f"provider '{self.provider.config.name}' ended the stream before a terminal event")
        return []

    # -- events ---------------------------------------------------------------------------------

    def _event(self, sse: SSEEvent) -> list[bytes]:
        if not sse.data or sse.data == "[DONE]" or self.done:
            return []
        event = event_json(sse.data, self.provider.config.name)
        if not isinstance(event, dict):
            return []
        kind = event.get("type") or sse.event
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        if response.get("model") and self.model is None:
            self.model = response["model"]
        if kind in TERMINAL_FAILED:
            self.done = True
            raise agent_response.failure(self.provider, response or event)
        if kind in ("response.created", "response.in_progress"):
            return self._start()
        if kind == "response.output_text.delta":
            return self._text(str(event.get("delta") or ""))
        if kind in ("response.output_item.added", "response.output_item.done"):
            return self._item(event, added=kind.endswith("added"))
        if kind == "response.function_call_arguments.delta":
            return self._arguments(event)
        if kind in TERMINAL_OK:
            if response.get("status") in ("failed", "cancelled"):
                self.done = True
                raise agent_response.failure(self.provider, response)
            if kind == "response.incomplete" and not response.get("status"):
                response = {**response, "status": "incomplete"}
            return self._completed(response)
        return []

    def _chunk(self, delta: dict[str, Any] | None = None, finish: str | None = None) -> bytes:
        return encode_data(self._new(delta, finish))

    def _new(self, delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        chunk = openai_chunk(self.call, delta, finish, model=self.model)
        drop_null_fingerprint(chunk)
        return chunk

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _text(self, text: str) -> list[bytes]:
        if not text:
            return []
        self.text_sent = True
        return [*self._start(), self._chunk({"content": text})]

    def _item(self, event: dict[str, Any], *, added: bool) -> list[bytes]:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return []
        frames = self._tool_start(item, event.get("output_index"))
        index = self.calls[str(item.get("call_id") or item.get("id"))]
        if not added and index not in self.args_sent:
            frames += self._tool_arguments(index, agent_response.tool_call(item)["function"]["arguments"])
        return frames

    def _tool_start(self, item: dict[str, Any], output_index: Any) -> list[bytes]:
        call = agent_response.tool_call(item)
        keys = [str(k) for k in (item.get("call_id"), item.get("id"), output_index) if k is not None]
        known = next((self.calls[k] for k in keys if k in self.calls), None)
        if known is not None:
            self.calls.update({k: known for k in keys})
            return []
        index = len(set(self.calls.values()))
        self.calls.update({k: index for k in keys})
        first = {"index": index, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": ""}}
        return [*self._start(), self._chunk({"tool_calls": [first]})]

    def _arguments(self, event: dict[str, Any]) -> list[bytes]:
        found = (event.get("item_id"), event.get("call_id"), event.get("output_index"))
        keys = [str(k) for k in found if k is not None]
        index = next((self.calls[k] for k in keys if k in self.calls), None)
        if index is None:
            return []  # a fragment for a call never announced: its final item carries the arguments
        return self._tool_arguments(index, str(event.get("delta") or ""))

    def _tool_arguments(self, index: int, fragment: str) -> list[bytes]:
        if not fragment:
            return []
        self.args_sent.add(index)
        return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})]

    def _completed(self, response: dict[str, Any]) -> list[bytes]:
        self.done = True
        output = agent_response.read_output(response.get("output"))
        frames = self._start()
        if output.text and not self.text_sent:
            frames += self._text(output.text)
        for item in response.get("output") or []:
            if isinstance(item, dict) and item.get("type") == "function_call":
                frames += self._item({"item": item}, added=False)
        has_calls = bool(self.calls) or bool(output.tool_calls)
        chunk = self._new({}, agent_response.finish_reason(response, has_calls))
        if output.citations:
            chunk["citations"] = output.citations
        if output.search_results:
            chunk["search_results"] = output.search_results
        frames.append(encode_data(chunk))
        self.usage = agent_response.usage(response.get("usage"))
        if self.call.include_usage and self.usage is not None:
            last = usage_chunk(self.call, self.usage, model=self.model)
            drop_null_fingerprint(last)
            last["usage"] = agent_response.openai_usage(response.get("usage"), self.usage)
            frames.append(encode_data(last))
        return frames
