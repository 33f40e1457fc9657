"""Server-sent events: an incremental decoder for upstream streams and encoders for the client side.

The decoder follows the WHATWG framing rules that vendors rely on: ``\\n``, ``\\r\\n`` and ``\\r`` line
endings, ``data:`` with or without a space, multi-line ``data`` joined by ``\\n``, comment lines
(``:``) skipped, an event dispatched at the blank line. It is fed bytes as they arrive and never
waits for the end of the stream; ``flush()`` dispatches an event left open at end of stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

DONE_FRAME = b"data: [DONE]\n\n"


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str = ""
    id: str = ""


class SSEDecoder:
    """Turns a byte stream into ``SSEEvent`` objects, fed incrementally."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_seen")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._id = ""
        self._seen = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[SSEEvent] = []
        start = 0
        length = len(buffer)
        while start < length:
            n = buffer.find(b"\n", start)
            r = buffer.find(b"\r", start, n if n >= 0 else length)
            if r >= 0:
                if r + 1 == length:
                    break  # a lone \r may be the first half of \r\n: wait for more
                end, next_start = r, (r + 2 if buffer[r + 1] == 10 else r + 1)
            elif n >= 0:
                end, next_start = n, n + 1
            else:
                break
            line = buffer[start:end]
            start = next_start
            if line:
                self._field(line)
            elif self._seen:
                events.append(self._dispatch())
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """Dispatch what is left at end of stream (a final event without its blank line)."""
        events = self.feed(b"\n\n") if self._buffer else []
        self._buffer = b""
        if self._seen:
            events.append(self._dispatch())
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 58:  # ":" comment / keep-alive
            return
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1:]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
            self._seen = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
            self._seen = True
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(data="\n".join(self._data), event=self._event, id=self._id)
        self._data = []
        self._event = ""
        self._seen = False
        return event


def encode_data(payload: dict) -> bytes:
    """One client-side SSE frame for a JSON payload."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(event: str, payload: dict | str, event_id: str | None = None) -> bytes:
    """A named SSE event (used by the vendor fakes in tests and by plugins that need names)."""
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()
