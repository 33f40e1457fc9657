"""Relaying a translated stream to the client, chunk by chunk, as the upstream sends it.

Nothing is buffered: each upstream read is translated and written at once. When the client goes
away, the relay is cancelled and the upstream connection closed (not returned to the pool), so the
vendor stops generating. A stream that fails after it started gets one SSE error event in OpenAI's
envelope and ends without ``[DONE]``, so it can never pass for a complete answer.
"""

from __future__ import annotations

import asyncio
import time

from gateway.errors import GatewayError, InternalError
from gateway.exchange import Exchange
from gateway.http import encode_headers
from gateway.pipeline import LiveStream
from gateway.sse import DONE_FRAME, encode_data

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


async def relay(send, receive, live: LiveStream, exchange: Exchange) -> None:
    task = asyncio.current_task()
    assert task is not None

    async def watch_disconnect() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                exchange.disconnected = True
                task.cancel()
                return

    watcher: asyncio.Task | None = None
    translator = live.translator
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": SSE_HEADERS + encode_headers(exchange.headers())})
        await send({"type": "http.response.body", "body": b"".join(live.first_frames), "more_body": True})
        exchange.first_byte_at = time.perf_counter()
        watcher = asyncio.create_task(watch_disconnect())  # after the first bytes: they go out first
        tail: list[bytes] = []
        if not live.ended:
            async for data in live.chunks:
                frames = translator.feed(data)
                if frames:
                    await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
            tail = translator.finish()
        tail.append(DONE_FRAME)
        await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})
        exchange.status = 200
    except GatewayError as error:
        await _end_with_error(send, exchange, error)
    except asyncio.CancelledError:
        if not exchange.disconnected:
            raise
        task.uncancel()
        exchange.status, exchange.error_code = 499, "client_disconnected"
    except Exception as exc:  # a translator bug must still end the stream honestly
        await _end_with_error(send, exchange, InternalError(f"stream translation failed ({type(exc).__name__})"))
    finally:
        if watcher is not None:
            watcher.cancel()
        live.upstream.close()
        exchange.usage = translator.usage
        if exchange.disconnected and task.cancelling():
            task.uncancel()


async def _end_with_error(send, exchange: Exchange, error: GatewayError) -> None:
    exchange.status, exchange.error_code = error.status, error.code
    try:
        await send({"type": "http.response.body", "body": encode_data(error.envelope()), "more_body": False})
    except OSError:
        exchange.disconnected = True
