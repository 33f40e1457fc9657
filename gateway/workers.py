"""``--workers N``: uvicorn's supervisor, with one listening socket per worker.

uvicorn binds one socket in the parent and every worker accepts from it, so a burst of new
connections goes to whichever worker wakes first: under the benchmark, one worker of two took all
32 keep-alive connections in about half the runs and the other sat idle (docs/benchmark.md). Here
each worker binds its own socket with ``SO_REUSEPORT`` and the kernel spreads new connections over
the workers by address hash. The parent binds the address once first, so a port in use fails at
start-up as before. Where ``SO_REUSEPORT`` does not balance (anything but Linux), uvicorn's shared
socket is kept. Supervision (restarts, signals, health checks) is uvicorn's own.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from uvicorn.supervisors import multiprocess


def listening_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _Worker(multiprocess.Process):
    """A uvicorn worker process that listens on a socket of its own (bound in the worker)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # runs in the worker
        super().target([listening_socket(self.config.host, self.config.port)])


def balances() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def run(app: str, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, factory=True, workers=workers, **options)``, with a socket per worker."""
    import uvicorn

    if not balances():
        uvicorn.run(app, factory=True, workers=workers, **options)
        return
    config = uvicorn.Config(app, factory=True, workers=workers, **options)
    try:
        listening_socket(config.host, config.port).close()  # the address is free (and ours to share)
    except OSError as exc:
        multiprocess.logger.error(exc)
        raise SystemExit(1) from None
    multiprocess.logger.info("Switchyard listening on %s:%d with %d workers (one socket each)",
                             config.host, config.port, workers)
    multiprocess.Process = _Worker  # type: ignore[misc]  # the supervisor builds every worker by this name
    multiprocess.Multiprocess(config, sockets=[]).run()
