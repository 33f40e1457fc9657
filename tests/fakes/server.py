"""Run an ASGI app (a vendor fake) on a real socket on 127.0.0.1, in a background thread.

    with serve_fake(CohereFake()) as fake:    # any fake with an ``app``; ``fake.url`` while it runs
        cohere.ClientV2(base_url=fake.url, ...)

    served = served_fixture(CohereFake)       # in a test module: the fixture ``served``, one per module
    fake = fresh_fixture()                    # ... and ``fake``: that fake, reset before the test
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import uvicorn

Fake = TypeVar("Fake")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeServer:
    """``with FakeServer(app) as server: server.url`` — started on a free port, stopped on exit."""

    def __init__(self, app, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", loop="asyncio", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self) -> "FakeServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def serve_fake(fake: Fake) -> Iterator[Fake]:
    """Serve ``fake.app`` on a free port; ``fake.url`` is its address until the block ends."""
    served: Any = fake
    with FakeServer(served.app) as server:
        served.url = server.url
        yield fake


def served_fixture(make: Callable[[], Fake]) -> Any:
    """A module-scoped pytest fixture: ``make()`` served (``serve_fake``) while the module's tests run.
    It takes the name it is assigned to: ``upstream = served_fixture(...)`` is the fixture ``upstream``."""

    @pytest.fixture(scope="module")
    def served() -> Iterator[Fake]:
        with serve_fake(make()) as fake:
            yield fake

    return served


def fresh_fixture(served: str = "served", *, autouse: bool = False) -> Any:
    """A per-test pytest fixture: the fake of the module's fixture named ``served``, reset (``reset()``:
    no scripted answers, nothing received) before the test. ``autouse``: before every test of the module."""

    @pytest.fixture(autouse=autouse)
    def fresh(request: pytest.FixtureRequest) -> Any:
        fake = request.getfixturevalue(served)
        fake.reset()
        return fake

    return fresh
