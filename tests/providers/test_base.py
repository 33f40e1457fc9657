"""``SSEStreamTranslator``: the SSE loop every vendor stream translator shares (providers/base.py).

A toy vendor: ``data: <text>`` events become frames, ``event: error`` raises, ``event: end`` is the
terminator and ``_end`` adds one last frame.
"""

from __future__ import annotations

import pytest

from gateway.errors import Overloaded, UpstreamError
from gateway.sse import SSEEvent
from providers.base import SSEStreamTranslator

pytestmark = pytest.mark.timeout(10)

STREAM = b"data: a\n\ndata: b\n\nevent: end\ndata: {}\n\n"


class ToyTranslator(SSEStreamTranslator):
    __slots__ = ("done",)

    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def _event(self, event: SSEEvent) -> list[bytes]:
        if event.event == "error":
            raise Overloaded(event.data)
        if event.event == "end":
            self.done = True
            return []
        return [b"data: " + event.data.encode() + b"\n\n"]

    def _end(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError("ended the stream before its end event")
        return [b"data: last\n\n"]


A, B, LAST = b"data: a\n\n", b"data: b\n\n", b"data: last\n\n"
BUSY = ("Overloaded", "busy")
CUT = ("UpstreamError", "ended the stream before its end event")


def run(pieces: list[bytes]) -> list:
    """What each call returns (frames) or raises (class name, message): ``feed`` per piece, then
    ``finish``; the calls stop at the first error."""
    translator = ToyTranslator()
    calls = [lambda piece=piece: translator.feed(piece) for piece in pieces] + [translator.finish]
    outcomes: list = []
    for call in calls:
        try:
            outcomes.append(call())
        except (Overloaded, UpstreamError) as exc:
            outcomes.append((type(exc).__name__, exc.message))
            break
    return outcomes


@pytest.mark.parametrize(("pieces", "outcomes"), [
    pytest.param([STREAM], [[A, B], [LAST]], id="frames-then-end-frames"),
    pytest.param([A + b"event: error\ndata: busy\n\ndata: never\n\n", B], [[A], BUSY],
                 id="error-after-frames-is-raised-by-the-next-feed"),
    pytest.param([A + b"event: error\ndata: busy\n\n"], [[A], BUSY], id="held-error-is-raised-by-finish"),
    pytest.param([A + b"event: error\ndata: busy\n\nevent: error\ndata: later"], [[A], BUSY],
                 id="held-error-is-raised-before-the-event-left-open-is-read"),
    pytest.param([A, b"event: error\ndata: busy\n\n" + B], [[A], BUSY], id="error-first-in-a-feed-raises-at-once"),
    pytest.param([A], [[A], CUT], id="finish-without-terminator"),
    pytest.param([A + b"event: end\ndata: {}"], [[A], [LAST]], id="finish-flushes-the-event-left-open"),
    pytest.param([A + b"event: error\ndata: busy"], [[A], BUSY], id="error-in-the-event-left-open"),
])
def test_calls(pieces, outcomes):
    assert run(pieces) == outcomes


def test_a_failed_stream_stays_failed():
    translator = ToyTranslator()
    assert translator.feed(A + b"event: error\ndata: busy\n\n") == [A]
    for later in (lambda: translator.feed(B), translator.finish, translator.finish):
        with pytest.raises(Overloaded, match="busy"):
            later()


def test_error_after_frames_among_the_flushed_events_is_not_lost():
    class Decoder:  # SSEDecoder flushes at most one event; the loop must not rely on it
        def flush(self) -> list[SSEEvent]:
            return [SSEEvent(data="a"), SSEEvent(data="busy", event="error")]

    translator = ToyTranslator()
    translator.decoder = Decoder()  # type: ignore[assignment]
    with pytest.raises(Overloaded, match="busy"):
        translator.finish()


@pytest.mark.parametrize("stream", [STREAM, A + B + b"event: error\ndata: busy\n\ndata: c\n\n",
                                    b"data: a\r\n\r\ndata: b\r\n\r\n"])
def test_output_does_not_depend_on_how_the_bytes_are_split(stream):
    def frames_and_error(outcomes: list) -> tuple[list[bytes], tuple | None]:
        error = outcomes[-1] if isinstance(outcomes[-1], tuple) else None
        return [frame for outcome in outcomes if isinstance(outcome, list) for frame in outcome], error

    whole = frames_and_error(run([stream]))
    for cut in range(1, len(stream)):
        assert frames_and_error(run([stream[:cut], stream[cut:]])) == whole, f"split at byte {cut}"
