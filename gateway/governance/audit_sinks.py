"""Where audit records go: a rotated JSON-lines file, or a Redis stream. Each also reads back.

``FileSink`` appends whole lines under an exclusive ``flock``, so several workers or processes may
share one file: the one that finds it over ``rotate_mb`` renames ``audit.jsonl`` -> ``.1`` -> ... ->
``.<keep>`` (the oldest is removed), and every writer notices the rename (inode check) and reopens.
Its methods block, so ``AuditLog`` calls them in a worker thread. ``RedisStreamSink`` appends with
``XADD ... MAXLEN ~ maxlen`` on governance's background Redis client.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from typing import Any

import orjson

from gateway.governance.config import SinkSpec

Match = Callable[[dict[str, Any]], bool]
READ_BLOCK = 1 << 16


class FileSink:
    name = "file"

    def __init__(self, spec: SinkSpec) -> None:
        self.path = os.path.abspath(spec.path)
        self.rotate_bytes = int(spec.rotate_mb * 1024 * 1024)
        self.keep = spec.keep
        self._fd: int | None = None

    def _open(self) -> int:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        if self._fd is None:
            self._fd = self._open()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._follow_rotation()
            if self.rotate_bytes and os.fstat(self._fd).st_size and \
                    os.fstat(self._fd).st_size + len(data) > self.rotate_bytes:
                self._rotate()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        finally:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _follow_rotation(self) -> None:
        """Another writer rotated the file: reopen the current one (and lock it instead)."""
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            old, self._fd = self._fd, self._open()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            os.close(old)

    def _rotate(self) -> None:
        if self.keep == 0:
            os.truncate(self.path, 0)
            return
        for index in range(self.keep - 1, 0, -1):
            source = f"{self.path}.{index}"
            if os.path.exists(source):
                os.replace(source, f"{self.path}.{index + 1}")
        os.replace(self.path, f"{self.path}.1")
        old, self._fd = self._fd, self._open()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.close(old)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self, match: Match, limit: int, stop: Match) -> list[dict[str, Any]]:
        """Newest first: the current file, then ``.1``, ``.2``...; stops early once ``stop`` holds."""
        out: list[dict[str, Any]] = []
        files = [self.path] + [f"{self.path}.{i}" for i in range(1, self.keep + 1)]
        for path in files:
            for line in _lines_backwards(path):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if stop(record):
                    return out
                if match(record):
                    out.append(record)
                    if len(out) >= limit:
                        return out
        return out


def _lines_backwards(path: str):
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        rest = b""
        while position > 0:
            size = min(READ_BLOCK, position)
            position -= size
            handle.seek(position)
            block = handle.read(size) + rest
            lines = block.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


class RedisStreamSink:
    name = "redis_stream"

    def __init__(self, spec: SinkSpec, client: Any) -> None:
        self.stream = spec.stream
        self.maxlen = spec.maxlen
        self.client = client

    async def write(self, lines: list[bytes]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for line in lines:
                pipe.xadd(self.stream, {"r": line}, maxlen=self.maxlen, approximate=True)
            await pipe.execute()

    async def read(self, match: Match, limit: int, stop: Match) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        last = "+"
        while True:
            entries = await self.client.xrevrange(self.stream, max=last, min="-", count=500)
            if not entries:
                return out
            for entry_id, fields in entries:
                record = orjson.loads(fields[b"r"])
                if stop(record):
                    return out
                if match(record):
                    out.append(record)
                    if len(out) >= limit:
                        return out
            last_id = entries[-1][0].decode()
            ms, seq = last_id.split("-")
            if int(seq) > 0:
                last = f"{ms}-{int(seq) - 1}"
            elif int(ms) > 0:
                last = f"{int(ms) - 1}-18446744073709551615"
            else:
                return out
