"""The Python load generator: keep-alive HTTP/1.1 on raw asyncio streams, for when wrk is not installed,
and always for streams (wrk cannot time the first token).

    python -m bench.pyload --url URL --body-file F [--header 'K: V'] --concurrency N --duration S
                           [--limit N] [--stream]

Prints one JSON object: requests, errors, seconds, latencies (p50/p99 in ms) and, for streams, the
time to the first ``data:`` frame and the spread between the first and the last frame (a relay that
buffers shows a spread near zero).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from array import array
from urllib.parse import urlsplit

import orjson

from bench.loop import run


class Stats:
    def __init__(self) -> None:
        self.latency = array("d")
        self.ttft = array("d")
        self.spread = array("d")
        self.frames = array("d")
        self.errors = 0
        self.bad_status = 0
        self.started = 0


async def _read_response(reader: asyncio.StreamReader, t0: float, stats: Stats) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = -1
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    first = last = 0.0
    frames = 0
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            data = await reader.readexactly(size + 2)
            if b"data:" in data:
                last = time.perf_counter()
                frames += 1
                if not first:
                    first = last
    elif length >= 0:
        await reader.readexactly(length)
    else:
        raise ConnectionError("response without length")
    end = time.perf_counter()
    if status != 200:
        stats.bad_status += 1
        return
    stats.latency.append((end - t0) * 1000)
    if first:
        stats.ttft.append((first - t0) * 1000)
        stats.spread.append((last - first) * 1000)
        stats.frames.append(frames)


async def _worker(host: str, port: int, raw: bytes, deadline: float, limit: int, stats: Stats) -> None:
    reader = writer = None
    while time.perf_counter() < deadline and (not limit or stats.started < limit):
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            stats.started += 1
            t0 = time.perf_counter()
            writer.write(raw)
            await asyncio.wait_for(_read_response(reader, t0, stats), timeout=max(1.0, deadline - t0 + 5))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError):
            stats.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def percentile(values, q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 4)


async def generate(url: str, body: bytes, headers: list[str], concurrency: int, duration: float,
                   limit: int = 0) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *headers]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    stats = Stats()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(_worker(host, port, raw, deadline, limit, stats) for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    result = {"tool": "python", "requests": len(stats.latency), "errors": stats.errors + stats.bad_status,
              "seconds": round(seconds, 3), "rps": round(len(stats.latency) / seconds, 1),
              "p50_ms": percentile(stats.latency, 50), "p99_ms": percentile(stats.latency, 99)}
    if stats.ttft:
        result.update(ttft_p50_ms=percentile(stats.ttft, 50), ttft_p99_ms=percentile(stats.ttft, 99),
                      spread_p50_ms=percentile(stats.spread, 50), frames_p50=percentile(stats.frames, 50))
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--limit", type=int, default=0, help="stop after this many requests")
    args = p.parse_args(argv)
    with open(args.body_file, "rb") as f:
        body = f.read()
    result = run(generate(args.url, body, args.header, args.concurrency, args.duration, args.limit))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
