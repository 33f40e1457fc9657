"""The audit log: file rotation shared by writers, reading newest first, and a failing sink that retries."""

from __future__ import annotations

import asyncio
import os
import threading

import orjson

from gateway.exchange import Attempt, Exchange
from gateway.governance.audit import AuditLog, SinkWriter, audit_record, parse_iso
from gateway.governance.audit_sinks import FileSink
from gateway.governance.config import AuditConfig, SinkSpec
from gateway.metrics import Metrics
from providers.base import Usage


def record(i: int, key: str = "k", ts: float = 1_700_000_000.0) -> dict:
    ex = Exchange(request_id=f"r{i}", endpoint="chat.completions", model="m", key_name=key, ts=ts + i)
    return audit_record(ex)


def test_record_shape_never_holds_a_key():
    ex = Exchange(request_id="r1", endpoint="chat.completions", model="gpt-4o-mini", key_name="checkout", team="payments",
                  stream=True, status=200, usage=Usage(3, 4), cost_usd=0.0000021)
    ex.attempts.append(Attempt("d1", "openai-main", 200, 12.5, "success"))
    ex.policy.append({"name": "redact-emails", "decision": "redacted"})
    rec = audit_record(ex)
    assert list(rec) == ["request_id", "ts", "endpoint", "key_name", "team", "model", "stream", "attempts", "status",
                         "error_code", "usage", "cost_usd", "policy", "duration_ms"]
    assert rec["attempts"] == [{"deployment": "d1", "provider": "openai-main", "status": 200, "latency_ms": 12.5}]
    assert rec["usage"]["total_tokens"] == 7 and rec["ts"].endswith("Z")
    assert abs(parse_iso(rec["ts"]) - ex.ts) < 0.001


def test_file_sink_rotates_and_keeps_n(tmp_path):
    path = tmp_path / "audit" / "audit.jsonl"
    sink = FileSink(SinkSpec(type="file", path=str(path), rotate_mb=0.001, keep=2))  # ~1 KB
    for i in range(40):
        sink.write([orjson.dumps(record(i)) + b"\n"])
    sink.close()
    names = sorted(os.listdir(path.parent))
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for name in names:
        assert os.path.getsize(path.parent / name) <= 1100
    newest = sink.read(lambda r: True, 5, lambda r: False)
    assert [r["request_id"] for r in newest] == ["r39", "r38", "r37", "r36", "r35"]


def test_two_writers_share_one_file_without_losing_or_mixing_lines(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    spec = SinkSpec(type="file", path=path, rotate_mb=0.05, keep=50)

    def writer(prefix: str) -> None:
        sink = FileSink(spec)
        for i in range(300):
            sink.write([orjson.dumps({**record(i), "request_id": f"{prefix}{i}"}) + b"\n"])
        sink.close()

    threads = [threading.Thread(target=writer, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = []
    for name in os.listdir(tmp_path):
        for line in (tmp_path / name).read_bytes().splitlines():
            seen.append(orjson.loads(line)["request_id"])
    assert sorted(seen) == sorted([f"a{i}" for i in range(300)] + [f"b{i}" for i in range(300)])


def test_read_filters_and_stops_at_since(tmp_path):
    sink = FileSink(SinkSpec(type="file", path=str(tmp_path / "a.jsonl")))
    sink.write([orjson.dumps(record(i, key="k" if i % 2 else "other")) + b"\n" for i in range(100)])
    out = sink.read(lambda r: r["key_name"] == "k" and parse_iso(r["ts"]) >= 1_700_000_090, 100,
                    lambda r: parse_iso(r["ts"]) < 1_700_000_090 - 5)
    assert [r["request_id"] for r in out] == ["r99", "r97", "r95", "r93", "r91"]


class FlakySink:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lines: list[bytes] = []

    async def write(self, lines):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("down")
        self.lines += lines


def test_a_failing_sink_buffers_retries_and_counts_drops():
    async def main():
        metrics = Metrics()
        sink = FlakySink(failures=3)
        writer = SinkWriter(sink, capacity=5, metrics=metrics)  # type: ignore[arg-type]
        writer.task = asyncio.create_task(writer.run())
        for i in range(8):
            writer.put(b"%d\n" % i)
        await asyncio.wait_for(writer.idle.wait(), 5)
        writer.task.cancel()
        return sink, metrics

    sink, metrics = asyncio.run(main())
    assert sink.lines == [b"3\n", b"4\n", b"5\n", b"6\n", b"7\n"]  # the three oldest were dropped, the rest kept
    assert metrics.audit_dropped.labels("flaky")._value.get() == 3


def test_audit_log_submit_and_read_back(tmp_path):
    async def main():
        log = AuditLog(AuditConfig(sinks=(SinkSpec(type="file", path=str(tmp_path / "a.jsonl")),)), Metrics())
        await log.start()
        for i in range(10):
            log.submit(record(i, key="a" if i < 5 else "b"))
        out = await log.read("a", None, None, 3)
        await log.close()
        return out

    assert [r["request_id"] for r in asyncio.run(main())] == ["r4", "r3", "r2"]


def test_drops_during_a_slow_write_do_not_lose_newer_records():
    class Slow:
        name = "slow"

        def __init__(self):
            self.lines = []
            self.release = asyncio.Event()

        async def write(self, lines):
            await self.release.wait()
            self.lines += lines

    async def main():
        metrics = Metrics()
        sink = Slow()
        writer = SinkWriter(sink, capacity=3, metrics=metrics)  # type: ignore[arg-type]
        writer.task = asyncio.create_task(writer.run())
        for i in range(3):
            writer.put(b"%d\n" % i)
        await asyncio.sleep(0.01)  # the writer holds batch 0, 1, 2
        for i in range(3, 5):
            writer.put(b"%d\n" % i)  # the buffer is full of records being written: 3 is dropped for 4
        sink.release.set()
        await asyncio.wait_for(writer.idle.wait(), 5)
        writer.task.cancel()
        return sink, metrics

    sink, metrics = asyncio.run(main())
    assert sink.lines == [b"0\n", b"1\n", b"2\n"]
    assert metrics.audit_dropped.labels("slow")._value.get() == 2


def test_redis_stream_sink_writes_and_reads_newest_first(redis_url):
    import redis.asyncio as aioredis

    from gateway.governance.audit_sinks import RedisStreamSink

    async def main():
        client = aioredis.Redis.from_url(redis_url)
        stream = f"audit-test-{os.getpid()}-{id(client)}"
        sink = RedisStreamSink(SinkSpec(type="redis_stream", stream=stream, maxlen=1000), client)
        await sink.write([orjson.dumps(record(i, key="a" if i % 3 else "b")) + b"\n" for i in range(1200)])
        newest = await sink.read(lambda r: r["key_name"] == "b", 3, lambda r: False)
        length = await client.xlen(stream)
        await client.delete(stream)
        await client.aclose()
        return newest, length

    newest, length = asyncio.run(main())
    assert [r["request_id"] for r in newest] == ["r1197", "r1194", "r1191"]
    assert 1000 <= length < 1200  # MAXLEN ~ trims in whole nodes
