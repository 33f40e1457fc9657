"""Re-reading the config file while serving: ``POST /admin/reload`` and SIGHUP.

The file is read and validated off the event loop; an invalid file changes nothing (the errors are
answered, or logged for SIGHUP). A valid one is swapped in atomically by ``Switchyard.install``:
requests already running finish on the table they started with; breaker state, in-flight counts
and latencies carry over for deployments whose id survives. Reloads are serialised.

What a reload cannot change without a restart: ``server.host``, ``server.port``, ``server.workers``.
Under ``--workers N`` a SIGHUP to the parent process is passed to every worker, each reloading itself
(``forward_sighup_to_workers``), so an invalid file never replaces a working table there either.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING

from gateway.config import Config, load_config
from gateway.config_reader import ConfigError

if TYPE_CHECKING:
    from gateway.app import Switchyard

log = logging.getLogger("switchyard")


class Reloader:
    def __init__(self, gw: Switchyard) -> None:
        self.gw = gw
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    async def reload(self) -> Config:
        """Re-read the config file and swap it in; raises ``ConfigError`` (the old table stays)."""
        async with self._lock:
            path = self.gw.config_path
            if not path:
                raise ConfigError(["the gateway was started without a config file: there is nothing to re-read"])
            config = await asyncio.to_thread(load_config, path)
            await self.gw.install(config)
            log.info("config reloaded", extra={"path": path, "models": len(config.models),
                                               "providers": len(config.providers)})
            return config

    def listen_for_sighup(self) -> None:
        """Reload on SIGHUP (the main thread's event loop only; elsewhere this does nothing)."""
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            pass

    def stop_listening(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            pass

    def _on_sighup(self) -> None:
        task = asyncio.ensure_future(self._reload_logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_logged(self) -> None:
        log.info("SIGHUP: re-reading the config")
        try:
            await self.reload()
        except ConfigError as exc:
            log.error("reload refused: the config file is invalid; the running config stays",
                      extra={"errors": exc.errors})
        except Exception:
            log.exception("reload failed; the running config stays")


def forward_sighup_to_workers() -> None:
    """Under ``--workers N``: make uvicorn's supervisor pass SIGHUP to each worker (which reloads
    itself, keeping its table when the file is invalid) instead of restarting the workers."""
    try:
        from uvicorn.supervisors import multiprocess
    except ImportError:
        return

    def handle_hup(self) -> None:
        multiprocess.logger.info("Received SIGHUP: each worker re-reads the config")
        for process in self.processes:
            pid = getattr(getattr(process, "process", process), "pid", None)
            if pid:
                try:
                    os.kill(pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass

    multiprocess.Multiprocess.handle_hup = handle_hup  # type: ignore[method-assign]
